"""`audit_append()`: append one row to a tenant's hash chain in one round trip.

Appending used to take three statements from Python (the chain's advisory lock,
the previous row's hash, the insert). The function does the same three inside
the database: it runs as the caller (SECURITY INVOKER), so row-level security
and the grants apply exactly as before, and under READ COMMITTED each of its
statements takes a fresh snapshot, so the previous hash is read after the lock
is held and sees the last committed row. The link is
sha256("<previous hash>:<content digest>"), the content digest computed by
`audit.services.audit_content_digest`. SQLite does the same in Python.

Called outside any transaction (`p_own_transaction`), it is a transaction of
its own, one round trip in all: it sets the tenant with
`set_config(..., true)` first, which ends with that one statement. Inside a
caller's transaction the caller's tenant stands, and row-level security
refuses a row of any other.

The chain's link changes with this migration (it used to hash the content and
the previous hash as one JSON document). Rows written before it keep their
link, and `audit_verify` accepts either on any row
(`audit.services.audit_row_hash_before_0003`): a chain begun earlier
continues unbroken.
"""

from django.db import migrations

FORWARD = r"""
CREATE FUNCTION audit_append(
    p_tenant uuid, p_user uuid, p_actor text, p_action text, p_target_type text,
    p_target_id text, p_details jsonb, p_ip inet, p_request_id text,
    p_created_at timestamptz, p_content_digest text, p_own_transaction boolean,
    OUT id bigint, OUT prev_hash text, OUT hash text
) LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
BEGIN
    IF p_own_transaction AND p_tenant IS NOT NULL THEN
        -- Called as a statement of its own (autocommit): its transaction is
        -- this statement, and the tenant is set for it alone.
        PERFORM set_config('app.current_tenant', p_tenant::text, true);
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('audit:' || coalesce(p_tenant::text, 'operator'), 0));
    IF p_tenant IS NULL THEN
        SELECT a.hash INTO prev_hash FROM audit_logs AS a WHERE a.tenant_id IS NULL ORDER BY a.id DESC LIMIT 1;
    ELSE
        SELECT a.hash INTO prev_hash FROM audit_logs AS a WHERE a.tenant_id = p_tenant ORDER BY a.id DESC LIMIT 1;
    END IF;
    prev_hash := coalesce(prev_hash, '');
    hash := encode(sha256(convert_to(prev_hash || ':' || p_content_digest, 'UTF8')), 'hex');
    INSERT INTO audit_logs (
        tenant_id, user_id, actor, action, target_type, target_id, details,
        ip_address, request_id, created_at, prev_hash, hash
    ) VALUES (
        p_tenant, p_user, p_actor, p_action, p_target_type, p_target_id, p_details,
        p_ip, p_request_id, p_created_at, prev_hash, hash
    ) RETURNING audit_logs.id INTO id;
END
$$;
"""

BACKWARD = r"""
DROP FUNCTION IF EXISTS audit_append(
    uuid, uuid, text, text, text, text, jsonb, inet, text, timestamptz, text, boolean
);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
