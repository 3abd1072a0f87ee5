"""The exports page. Thin: role check, a selector or one service call, a template (or the
htmx fragment of it)."""

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling, reswap, retarget
from django_htmx.middleware import HtmxDetails

from accounts.models import Role
from accounts.permissions import role_required
from core.db import replica_view
from core.storage import presigned_url
from retraining import selectors, services
from retraining.forms import BuildForm, ComparisonsForm, FeedbackForm, TrainedForm
from retraining.models import ExportBatch

EXPORT_ROLES = (Role.ML, Role.ADMIN)


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


PAGE = "retraining/exports.html"


def _batch(pk: int) -> ExportBatch:
    try:
        return selectors.batch_get(pk)
    except ExportBatch.DoesNotExist:
        raise Http404("No such batch.") from None


def _page_context(request: HttpRequest, **forms) -> dict:
    agent = selectors.agent_by_slug(request.GET.get("agent", ""))
    overview = selectors.agents_overview()
    if agent is None and overview:
        with_pairs = [row["agent"] for row in overview if row["total"]]
        agent = (with_pairs or [overview[0]["agent"]])[0]
    initial = {"agent": agent.slug} if agent else {}
    return {
        "overview": overview,
        "agent": agent,
        "breakdown": selectors.agent_breakdown(agent) if agent else None,
        "build_form": forms.get("build_form") or BuildForm(initial=initial),
        "feedback_form": forms.get("feedback_form") or FeedbackForm(initial=initial),
        "comparisons_form": forms.get("comparisons_form") or ComparisonsForm(initial=initial),
        "batches": selectors.batches_page(
            page=request.GET.get("page"), per_page=settings.EXPORT_PAGE_SIZE
        ),
    }


@require_GET
@role_required(*EXPORT_ROLES)
@replica_view
def exports(request: HttpRequest) -> HttpResponse:
    return render(request, PAGE, _page_context(request))


@require_POST
@role_required(*EXPORT_ROLES)
def build(request: HtmxHttpRequest) -> HttpResponse:
    """Requests a batch (training pairs or the feedback log); the build runs in a task.
    Nothing to export → 400 with the reason; an identical batch exists → it is offered
    (a message and a redirect to it; htmx: 409, a link in the form); over the per-user
    limits → 429 with the reason. htmx answers other than 200 replace the form."""
    dataset = request.POST.get("dataset")
    form_class, name = {
        ExportBatch.Dataset.FEEDBACK: (FeedbackForm, "feedback_form"),
        ExportBatch.Dataset.COMPARISONS: (ComparisonsForm, "comparisons_form"),
    }.get(dataset or "", (BuildForm, "build_form"))
    form = form_class(request.POST)
    status = 400
    if form.is_valid():
        try:
            batch = services.batch_request(
                actor=request.user, refuse_empty=True, reuse_existing=True, **form.request()
            )
        except services.InvalidRequest as exc:
            form.add_service_errors(exc.errors)
        except services.BatchExists as exc:
            existing = exc.batch
            url = f"{reverse('retraining:exports')}?agent={existing.agent.slug}#batch-{existing.pk}"
            notice = format_html(
                '{}: <a href="{}">see batch #{}</a>.', str(exc).removesuffix("."), url, existing.pk
            )
            if not request.htmx:
                messages.info(request, notice)
                return redirect(url)
            form.add_error(None, notice)
            status = 409
        except services.TooManyActive as exc:
            form.add_error(None, str(exc))
            status = 429
        else:
            if request.htmx:
                context = {"batches": selectors.batches_page(per_page=settings.EXPORT_PAGE_SIZE)}
                return render(request, f"{PAGE}#batches", context)
            messages.success(request, f"Batch {batch.pk} is queued.")
            return redirect(f"{reverse('retraining:exports')}?agent={batch.agent.slug}")
    if request.htmx:
        response = render(request, f"{PAGE}#{name}", {name: form}, status=status)
        return reswap(retarget(response, f"#{name}"), "outerHTML")
    return render(request, PAGE, _page_context(request, **{name: form}), status=status)


@require_GET
@role_required(*EXPORT_ROLES)
@replica_view
def batch_row(request: HttpRequest, pk: int) -> HttpResponse:
    """The batch's row (polled by htmx while it builds); 286 stops the polling once the
    batch is ready or failed."""
    batch = _batch(pk)
    html = render_to_string(f"{PAGE}#batch_row", {"batch": batch}, request=request)
    return HttpResponseStopPolling(html) if batch.is_finished else HttpResponse(html)


def _row_or_redirect(request: HtmxHttpRequest, batch: ExportBatch) -> HttpResponse:
    if request.htmx:
        return render(request, f"{PAGE}#batch_row", {"batch": batch})
    return redirect(f"{reverse('retraining:exports')}#batch-{batch.pk}")


@require_POST
@role_required(*EXPORT_ROLES)
def retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    batch = _batch(pk)
    try:
        batch = services.batch_retry(batch=batch, actor=request.user)
    except services.ExportError as exc:  # not failed (Conflict), over the limits
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Batch {batch.pk} is queued again.")
    return _row_or_redirect(request, _batch(pk))


@require_POST
@role_required(*EXPORT_ROLES)
def mark_trained(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    batch = _batch(pk)
    form = TrainedForm(request.POST)
    if form.is_valid():
        try:
            services.batch_mark_trained(
                batch=batch, agent_version=form.cleaned_data["agent_version"], actor=request.user
            )
        except services.ExportError as exc:
            messages.error(request, str(exc))
    else:
        messages.error(request, "; ".join(str(e) for errs in form.errors.values() for e in errs))
    return _row_or_redirect(request, _batch(pk))


def file_response(batch: ExportBatch, *, manifest: bool = False) -> HttpResponseBase:
    """The stored file of a ready batch, streamed, with its size and sha256 in the headers
    (the API's download uses it too); with object storage and presigned downloads on, a
    redirect to a short-lived address of the file instead (the role was checked first).
    Raises services.Conflict when it is not ready."""
    stored_name, handle = services.batch_file_open(batch=batch, manifest=manifest)
    name = selectors.download_name(batch)
    if manifest:
        name = name.rsplit(".", 1)[0] + ".manifest.json"
    content_type = "application/json" if manifest else selectors.content_type(batch)
    response: HttpResponseBase
    if url := presigned_url(stored_name, filename=name, content_type=content_type):
        response = HttpResponseRedirect(url)
    else:
        response = FileResponse(
            handle(), as_attachment=True, filename=name, content_type=content_type
        )
        if not manifest:
            response["Content-Length"] = str(batch.file_size)
    if not manifest:
        response["X-Content-SHA256"] = batch.sha256
        response["ETag"] = f'"{batch.sha256}"'
    return response


@require_GET
@role_required(*EXPORT_ROLES)
def download(request: HttpRequest, pk: int) -> HttpResponseBase:
    try:
        return file_response(_batch(pk))
    except services.Conflict as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")


@require_GET
@role_required(*EXPORT_ROLES)
def manifest(request: HttpRequest, pk: int) -> HttpResponseBase:
    try:
        return file_response(_batch(pk), manifest=True)
    except services.Conflict as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
