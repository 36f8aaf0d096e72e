"""Server-rendered pages, one module per journey; each module ends with its `urlpatterns`."""
