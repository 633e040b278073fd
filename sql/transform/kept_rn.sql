-- Reads typed_tasks (the batch's Arrow table, each row numbered rn) and produces the table kept_rn: the rows
-- that load where a task id is listed twice (a task listed again while its execution ran). The row with the
-- highest StatusRevision wins, then the later pass, page and position.
CREATE OR REPLACE TEMP TABLE kept_rn AS
SELECT rn FROM typed_tasks
WHERE task_id IS NOT NULL
QUALIFY row_number() OVER (
    PARTITION BY instance_id, execution_id, task_id
    ORDER BY status_revision DESC NULLS LAST, pass_no DESC, page_offset DESC, pos DESC
) = 1
