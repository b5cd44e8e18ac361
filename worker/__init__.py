"""Glue between the job queue, the service's database and storage, and the attencraft_core pipeline."""
