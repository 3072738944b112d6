"""Scheduled replication: schedules in the database, their runs, the file, the dry run."""
