-- The warehouse lives in its own database beside the application database.
CREATE DATABASE warehouse OWNER his;
