"""Row-level security as a migration operation.

`EnableRowLevelSecurity("licenses")` in a migration turns on ENABLE and FORCE
ROW LEVEL SECURITY and one policy with USING and WITH CHECK on the tenant
column. No tenant in scope makes the comparison NULL: zero rows, and every
write refused (fail closed). On SQLite it does nothing; the ORM scope remains.
"""

from __future__ import annotations

from django.db import migrations

TENANT_SETTING = "nullif(current_setting('app.current_tenant', true), '')::uuid"
POLICY = "tenant_isolation"


class EnableRowLevelSecurity(migrations.operations.base.Operation):
    reduces_to_sql = True
    reversible = True

    def __init__(self, table: str, column: str = "tenant_id") -> None:
        self.table = table
        self.column = column

    def deconstruct(self):
        return (self.__class__.__qualname__, [self.table], {"column": self.column})

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        quote = schema_editor.quote_name
        table, column = quote(self.table), quote(self.column)
        condition = f"{column} = {TENANT_SETTING}"
        schema_editor.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        schema_editor.execute(
            f"CREATE POLICY {POLICY} ON {table} USING ({condition}) WITH CHECK ({condition})"
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        table = schema_editor.quote_name(self.table)
        schema_editor.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
        schema_editor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")

    def describe(self):
        return f"Enable row-level security on {self.table} by {self.column}"
