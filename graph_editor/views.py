"""The UI pages beside the admin: execution timeline, graph editor, start form.

Staff only (redirect to the admin login). The pages are templates plus static
ES modules; the timeline polls ``execution_data`` and the editor calls the
public API with the session (graph_editor.authentication).
"""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from definitions.models import Definition
from definitions.services import get_definition, latest_definition
from executions import services
from executions.api.serializers import ExecutionSerializer, StepSerializer
from executions.models import Execution
from graph_editor.forms import StartExecutionForm


def timeline_payload(execution: Execution) -> dict:
    """What the timeline draws: the execution, its steps in order, and the graph it ran."""
    return {
        "execution": ExecutionSerializer(execution).data,
        "steps": StepSerializer(execution.steps.order_by("seq"), many=True).data,
        "spec": execution.definition.spec,
        "is_final": execution.is_final,
        "server_time": timezone.now().isoformat(),
    }


def _execution_or_404(pk) -> Execution:
    return get_object_or_404(Execution.objects.select_related("definition"), pk=pk)


@staff_member_required
def execution_page(request: HttpRequest, pk) -> HttpResponse:
    execution = _execution_or_404(pk)
    context = {"execution": execution, "payload": timeline_payload(execution)}
    return render(request, "graph_editor/execution.html", context)


@staff_member_required
def execution_data(request: HttpRequest, pk) -> JsonResponse:
    return JsonResponse(timeline_payload(_execution_or_404(pk)))


def _stored_definition(name: str, version: int | None) -> Definition:
    try:
        if version is None:
            return latest_definition(name)
        return get_definition(name, version)
    except Definition.DoesNotExist:
        raise Http404(f"No definition {name!r} version {version or 'latest'}.") from None


@staff_member_required
def editor_page(request: HttpRequest, name: str | None = None, version: int | None = None) -> HttpResponse:
    definition = _stored_definition(name, version) if name is not None else None
    loaded = None
    if definition is not None:
        loaded = {
            "name": definition.name,
            "version": definition.version,
            "kind": definition.kind,
            "spec": definition.spec,
            "description": (definition.source or {}).get("description"),
        }
    urls = {
        "validate": reverse("definition-validate"),
        "store": reverse("definition-list"),
        "evaluate": reverse("expression-evaluate"),
        "editor": reverse("ui-editor"),
        "start": reverse("ui-start", args=["__name__", 0]),
    }
    return render(request, "graph_editor/editor.html", {"definition": definition, "loaded": loaded, "urls": urls})


@staff_member_required
def start_page(request: HttpRequest, name: str, version: int) -> HttpResponse:
    definition = _stored_definition(name, version)
    form = StartExecutionForm(request.POST or None, initial={"input": {}})
    if request.method == "POST" and form.is_valid():
        execution, _ = services.start_execution(
            definition, form.cleaned_data["input"], created_by=request.user.get_username()
        )
        return redirect(reverse("ui-execution", args=[execution.pk]))
    return render(request, "graph_editor/start.html", {"definition": definition, "form": form})
