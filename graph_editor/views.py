"""The UI pages beside the admin: execution timeline, graph editor, start form.

Staff only (redirect to the admin login). The pages are templates plus static
ES modules; the timeline polls ``execution_data`` and the editor calls the
public API with the session (graph_editor.authentication).
"""

import json
import uuid

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from definitions.models import Definition
from definitions.services import DefinitionNotFound, definition_versions, find_definition
from executions import services, telemetry
from executions.api.serializers import ExecutionSerializer, StepSerializer
from executions.choices import page_statuses
from executions.models import Execution, ExecutionStatus, OperatorAction, OperatorActionKind, Step
from executions.permissions import ACT_ON_EXECUTION
from graph_editor import operations
from graph_editor.forms import StartExecutionForm
from graph_editor.history import history_events


def timeline_payload(execution: Execution) -> dict:
    """What the page draws: the execution, its and its branches' steps in time order, the graph it ran,
    the event history (steps and operator actions) and the actions that apply now."""
    branches = Execution.objects.order_by("created_at", "branch").branches_under([execution.pk])
    ids = [execution.pk, *(branch.pk for branch in branches)]
    steps = Step.objects.filter(execution_id__in=ids).select_related("execution").order_by("started_at", "seq")
    step_data = StepSerializer(steps, many=True).data
    actions = OperatorAction.objects.filter(execution_id__in=ids).order_by("at", "pk")
    backoff_until = execution.due_at.isoformat() if execution.status == ExecutionStatus.SLEEPING else None
    return {
        "execution": ExecutionSerializer(execution).data,
        "steps": step_data,
        "history": history_events(step_data, actions, backoff_until),
        "operations": operations.available(execution, branches),
        "branches": [
            {
                "id": str(branch.pk),
                "parent": str(branch.parent_id),
                "branch": branch.branch,
                "status": branch.status,
                "current_node": branch.current_node,
            }
            for branch in branches
        ],
        "spec": execution.definition.spec,
        "editor": execution.definition.editor_drawing,
        "is_final": execution.is_final,
        "server_time": timezone.now().isoformat(),
    }


def _execution_or_404(pk) -> Execution:
    return get_object_or_404(Execution.objects.select_related("definition"), pk=pk)


@staff_member_required
def execution_page(request: HttpRequest, pk) -> HttpResponse:
    execution = _execution_or_404(pk)
    context = {
        "execution": execution,
        "payload": timeline_payload(execution),
        "statuses": page_statuses(),
        "may_act": request.user.has_perm(ACT_ON_EXECUTION),
        "rerun_form": operations.RerunForm(),
        "definition_is_latest": _is_latest(execution),
        "rerun_of": _rerun_of(execution),
    }
    return render(request, "graph_editor/execution.html", context)


def _rerun_of(execution: Execution):
    """The id of the execution this one re-ran, if any: the original's re-run action names the new execution."""
    reruns = OperatorAction.objects.filter(kind=OperatorActionKind.RERUN, detail__execution=str(execution.pk))
    return reruns.values_list("execution_id", flat=True).first()


@staff_member_required
def execution_data(request: HttpRequest, pk) -> JsonResponse:
    return JsonResponse(timeline_payload(_execution_or_404(pk)))


@require_POST
@staff_member_required
def execution_action(request: HttpRequest, pk, action: str) -> HttpResponse:
    """Carry out one operator action (graph_editor.operations) and come back to the page with a message.

    Needs the ``act_on_execution`` permission, not only the page's staff access.
    A refusal (the execution moved on meanwhile) or an invalid form is a message, never an error page.
    """
    if not request.user.has_perm(ACT_ON_EXECUTION):
        raise PermissionDenied("You may look at executions but not act on them (permission act_on_execution).")
    operation = operations.OPERATIONS.get(action)
    if operation is None:
        raise Http404(f"No action {action!r}.")
    execution = _execution_or_404(pk)
    back = reverse("ui-execution", args=[execution.pk])
    form = operation.form(request.POST)
    if not form.is_valid():
        problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
        messages.error(request, f"Not done: {problems}")
        return redirect(back)
    try:
        result = operation.run(execution, form.cleaned_data, request.user.get_username())
    except services.TransitionRefused as refused:
        messages.error(request, f"Not done: {refused}.")
        return redirect(back)
    messages.success(request, operation.done)
    return redirect(reverse("ui-execution", args=[result.pk]) if action == "rerun" else back)


def _is_latest(execution: Execution) -> bool:
    """The execution runs its definition's latest version (so "re-run on the latest version" changes nothing)."""
    definition = execution.definition
    return definition.is_inline or stored_versions(definition.name)[-1:] == [definition.version]


def _stored_definition(name: str, version: int | None) -> Definition:
    try:
        return find_definition(name, version)
    except DefinitionNotFound as missing:
        raise Http404(str(missing)) from None


def _execution_to_simulate(request: HttpRequest) -> Execution | None:
    """The execution named by ``?simulate=<id>`` (its input fills the Simulate tab), or None when there is none."""
    try:
        pk = uuid.UUID(request.GET.get("simulate", ""))
    except ValueError:
        return None
    return Execution.objects.select_related("definition").filter(pk=pk).first()


@staff_member_required
def editor_page(request: HttpRequest, name: str | None = None, version: int | None = None) -> HttpResponse:
    """The editor; ``?simulate=<execution id>`` opens its Simulate tab on that execution's input
    (without a name: on the definition that execution ran, inline ones included)."""
    simulated = _execution_to_simulate(request)
    definition = _stored_definition(name, version) if name is not None else None
    if definition is None and simulated is not None:
        definition = simulated.definition
    loaded = None
    if definition is not None:
        loaded = {
            "name": definition.name,
            "version": definition.version,
            "kind": definition.kind,
            "spec": definition.spec,
            "description": (definition.source or {}).get("description"),
            "editor": definition.editor_drawing,
        }
    urls = {
        "validate": reverse("definition-validate"),
        "store": reverse("definition-list"),
        "evaluate": reverse("expression-evaluate"),
        "simulate": reverse("definition-simulate"),
        "editor": reverse("ui-editor"),
        "start": reverse("ui-start", args=["__name__", 0]),
    }
    versions = []
    if definition is not None and not definition.is_inline:
        versions = stored_versions(definition.name)
        urls["diff"] = _url_template("ui-diff", definition.name, "a", "b")
    context = {"definition": definition, "loaded": loaded, "urls": urls, "versions": versions}
    if simulated is not None:
        context["sim_input"] = json.dumps(simulated.input, indent=2)
        context["simulated"] = simulated
    return render(request, "graph_editor/editor.html", context)


def stored_versions(name: str) -> list[int]:
    """The stored (not inline) versions of a name, oldest first."""
    return list(definition_versions(name).order_by("version").values_list("version", flat=True))


def _url_template(url_name: str, name: str, *slots: str) -> str:
    """A URL with ``{slot}`` placeholders for its version numbers, filled in by the page's script."""
    markers = [str(987_654_320 + i) for i in range(len(slots))]
    url = reverse(url_name, args=[name, *markers])
    for marker, slot in zip(markers, slots, strict=True):
        url = url.replace(f"/{marker}/", f"/{{{slot}}}/")
    return url


@staff_member_required
def diff_page(request: HttpRequest, name: str, version: int | None = None, other: int | None = None) -> HttpResponse:
    """Two versions of a definition side by side: both graphs, nodes added / removed / changed, changed fields.

    Without versions: the latest against the one before it. The page calls
    GET /api/v1/definitions/{name}/versions/{a}/diff/{b}/ and .../versions/{n}/ with the session.
    """
    versions = stored_versions(name)
    if not versions:
        raise Http404(f"No definition {name!r}.")
    if version is None:
        other = versions[-1]
        version = versions[-2] if len(versions) > 1 else other
    elif version not in versions or other not in versions:
        raise Http404(f"{name!r} has no version {version if version not in versions else other}.")
    config = {
        "name": name,
        "versions": versions,
        "from": version,
        "to": other,
        "urls": {
            "diff": _url_template("definition-diff", name, "a", "b"),
            "version": _url_template("definition-version", name, "n"),
            "page": _url_template("ui-diff", name, "a", "b"),
            "editor": _url_template("ui-editor-version", name, "n"),
        },
    }
    return render(request, "graph_editor/diff.html", {"name": name, "config": config})


@staff_member_required
def start_page(request: HttpRequest, name: str, version: int) -> HttpResponse:
    definition = _stored_definition(name, version)
    form = StartExecutionForm(request.POST or None, initial={"input": {}})
    if request.method == "POST" and form.is_valid():
        execution, _ = services.start_execution(
            definition,
            form.cleaned_data["input"],
            created_by=request.user.get_username(),
            trace_parent=telemetry.caller_traceparent(request.headers),
        )
        return redirect(reverse("ui-execution", args=[execution.pk]))
    return render(request, "graph_editor/start.html", {"definition": definition, "form": form})
