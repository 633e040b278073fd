-- Reads resource_errors, typed_tasks and kept_tasks and produces the batch's rejects found in SQL, in the
-- rejects table's order: rejected resources, task ids that are not integers, a missing operation or status,
-- and a revision or time that does not cast (their task still loads, with a NULL).
SELECT instance_id, execution_id, task_id, side || '_resource' AS field, error, raw,
       run_id, page_offset, pos AS position, execution_month
FROM resource_errors
UNION ALL
SELECT instance_id, execution_id, NULL, 'id', 'task id is not an integer: not loaded',
       id_raw, run_id, page_offset, pos, execution_month
FROM typed_tasks WHERE task_id IS NULL AND id_raw IS NOT NULL
UNION ALL
SELECT instance_id, execution_id, task_id, 'operation', 'missing', NULL, run_id, page_offset, pos, execution_month
FROM kept_tasks WHERE operation IS NULL
UNION ALL
SELECT instance_id, execution_id, task_id, 'status', 'missing', NULL, run_id, page_offset, pos, execution_month
FROM kept_tasks WHERE status IS NULL
UNION ALL
SELECT instance_id, execution_id, task_id, 'StatusRevision', 'not an integer', revision_raw,
       run_id, page_offset, pos, execution_month
FROM kept_tasks WHERE revision_raw IS NOT NULL AND status_revision IS NULL
UNION ALL
SELECT instance_id, execution_id, task_id, 'start_time', 'not a timestamp', start_raw,
       run_id, page_offset, pos, execution_month
FROM kept_tasks WHERE start_time IS NULL AND NULLIF(trim(start_raw), '') IS NOT NULL
UNION ALL
SELECT instance_id, execution_id, task_id, 'end_time', 'not a timestamp', end_raw,
       run_id, page_offset, pos, execution_month
FROM kept_tasks WHERE end_time IS NULL AND NULLIF(trim(end_raw), '') IS NOT NULL
ORDER BY instance_id, execution_month, execution_id, page_offset, position, field
