-- When was each tag tried, and how did each attempt end? One row per source tag a copy task listed, or per
-- subtask (one tag of a task, fetched with --subtasks). The attempt's status is the subtask's when there is
-- one (the only per-tag outcome SWR gives), else its task's (per_tag false: with --subtasks failed the tags of
-- a Succeed task have no subtask and succeeded with it; with --subtasks none every tag shares its task's
-- status). Grain: one row per instance, execution, task and tag. Columns: instance_id, policy_id,
-- src_repository (the task's, else the subtask's namespace/repository), dst_repository, tag, digest,
-- execution_id, task_id, subtask_id, trigger and execution_status (of the execution), finished (the execution
-- ended: Succeed, Failed or Stopped), status (Succeed, Failed, Stopped, InProgress, ...), per_tag, status_text
-- (the subtask's failure text; NULL without a subtask), attempted_at (the subtask's, else the task's end_time,
-- else its start_time), on_destination (the task's destination resource lists the tag at the same digest; NULL
-- when that resource was rejected).
WITH listed AS (
    SELECT
        s.instance_id,
        s.execution_id,
        s.task_id,
        s.tag,
        min(s.digest) AS digest
    FROM tags AS s
    WHERE s.side = 'src' AND s.tag IS NOT NULL
    GROUP BY ALL
),
per_tag AS (
    SELECT
        instance_id,
        execution_id,
        task_id,
        tag,
        arg_max(subtask_id, subtask_id) AS subtask_id,
        arg_max(namespace, subtask_id) AS namespace,
        arg_max(repository, subtask_id) AS repository,
        arg_max(digest, subtask_id) AS digest,
        arg_max(status, subtask_id) AS status,
        arg_max(status_text, subtask_id) AS status_text,
        arg_max(coalesce(end_time, start_time), subtask_id) AS attempted_at
    FROM subtasks
    WHERE tag IS NOT NULL
    GROUP BY ALL
),
attempts AS (
    SELECT
        coalesce(l.instance_id, p.instance_id) AS instance_id,
        coalesce(l.execution_id, p.execution_id) AS execution_id,
        coalesce(l.task_id, p.task_id) AS task_id,
        coalesce(l.tag, p.tag) AS tag,
        coalesce(p.digest, l.digest) AS digest,
        p.subtask_id,
        p.namespace,
        p.repository,
        p.status AS subtask_status,
        p.status_text,
        p.attempted_at
    FROM listed AS l
    FULL OUTER JOIN per_tag AS p
        ON p.instance_id = l.instance_id AND p.execution_id = l.execution_id AND p.task_id = l.task_id
            AND p.tag = l.tag
)
SELECT
    a.instance_id,
    t.policy_id,
    coalesce(t.src_repository, nullif(concat_ws('/', nullif(a.namespace, ''), a.repository), '')) AS src_repository,
    t.dst_repository,
    a.tag,
    a.digest,
    a.execution_id,
    a.task_id,
    a.subtask_id,
    e.trigger,
    e.status AS execution_status,
    coalesce(e.status IN ('Succeed', 'Failed', 'Stopped'), false) AS finished,
    coalesce(a.subtask_status, t.status) AS status,
    a.subtask_id IS NOT NULL AS per_tag,
    a.status_text,
    coalesce(a.attempted_at, t.end_time, t.start_time) AS attempted_at,
    CASE
        WHEN coalesce(t.dst_rejected, false) THEN NULL
        ELSE EXISTS (
            SELECT 1 FROM tags AS d
            WHERE d.instance_id = a.instance_id AND d.execution_id = a.execution_id AND d.task_id = a.task_id
                AND d.side = 'dst' AND d.tag = a.tag AND d.digest IS NOT DISTINCT FROM a.digest
        )
    END AS on_destination
FROM attempts AS a
JOIN tasks AS t ON t.instance_id = a.instance_id AND t.execution_id = a.execution_id AND t.task_id = a.task_id
LEFT JOIN executions AS e ON e.instance_id = a.instance_id AND e.execution_id = a.execution_id
WHERE t.operation = 'copy'
