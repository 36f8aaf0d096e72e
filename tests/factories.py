"""factory_boy factories for people; personas are built from these in tests/conftest.py."""

from __future__ import annotations

import factory
from django.contrib.auth.models import User

from hisplatform.models import Role, StaffProfile

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = "Test"
    last_name = factory.Sequence(lambda n: f"Person{n}")
    password = factory.django.Password(PASSWORD)


class StaffProfileFactory(factory.django.DjangoModelFactory[StaffProfile]):
    class Meta:
        model = StaffProfile

    user = factory.SubFactory(UserFactory)
    role = Role.CLINICIAN
    department = "CARD"
