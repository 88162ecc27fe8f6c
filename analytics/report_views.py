"""The dashboard's monthly usage reports (issue 16, "Reports by themselves"):
the list of the tenant's reports of the last twelve months, and each one's
CSV, the very text that was attached to its email. Tenant admins only; the
scoped manager (and RLS below it) makes another tenant's report a 404."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from analytics.dashboard import tenant_admin_view
from analytics.models import MonthlyReport
from analytics.report_services import month_add, month_first, monthly_report_filename
from licenses.models import License

# The list shows the reports of this many months before the current one.
REPORT_MONTHS = 12


@require_GET
@tenant_admin_view
def report_list(request):
    since = month_add(month_first(timezone.now()), -REPORT_MONTHS)
    reports = list(MonthlyReport.objects.filter(month__gte=since).defer("csv_text").order_by("-month"))
    names = {
        license.id: license
        for license in License.objects.filter(id__in={report.license_id for report in reports})
    }
    rows = [{"report": report, "license": names.get(report.license_id)} for report in reports]
    rows.sort(key=lambda row: (-row["report"].month.toordinal(), str(row["license"] or "")))
    return render(request, "dashboard/reports.html", {"rows": rows, "months": REPORT_MONTHS})


@require_GET
@tenant_admin_view
def report_csv(request, report_id: int):
    report = MonthlyReport.objects.filter(id=report_id).first()
    license = License.objects.filter(id=report.license_id).first() if report else None
    if report is None or license is None:
        raise Http404("No such report.")
    response = HttpResponse(report.csv_text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{monthly_report_filename(report, license)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
