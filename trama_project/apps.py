from django.apps import AppConfig


class TramaProjectConfig(AppConfig):
    """The project package doubles as the app that owns API tokens and shared API code."""

    name = "trama_project"
    verbose_name = "Access"
