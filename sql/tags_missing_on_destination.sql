-- Which tags never reached the mirror? Every tag listed on the source side of a copy task that its
-- destination side does not list (same task, same digest). Grain: one row per task and missing tag.
-- Columns: instance_id, execution_id, task_id, task status, source and destination repository, digest, tag,
-- task start time. A task whose destination resource was rejected is left out (see rejects).
SELECT
    t.instance_id,
    t.execution_id,
    t.task_id,
    t.status,
    t.src_repository,
    t.dst_repository,
    s.digest,
    s.tag,
    t.start_time
FROM tags AS s
JOIN tasks AS t
    ON t.instance_id = s.instance_id AND t.execution_id = s.execution_id AND t.task_id = s.task_id
WHERE s.side = 'src'
    AND t.operation = 'copy'
    AND NOT t.dst_rejected
    AND NOT EXISTS (
        SELECT 1
        FROM tags AS d
        WHERE d.side = 'dst'
            AND d.instance_id = s.instance_id
            AND d.execution_id = s.execution_id
            AND d.task_id = s.task_id
            AND d.digest = s.digest
            AND d.tag = s.tag
    )
