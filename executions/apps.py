from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"

    def ready(self) -> None:
        from executions import telemetry

        telemetry.install()  # the trama_* /metrics collector; tracing from OTEL_* (trama_project/otel.py)
