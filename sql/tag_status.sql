-- Where does each tag stand now, counting retries? A tag that failed and then replicated is 'replicated'.
-- From tag_attempts: per (instance, policy, source repository, tag), the newest attempt (by attempted_at,
-- then execution and task id) decides the state: 'replicated' (Succeed, and the destination lists it),
-- 'missing' (Succeed, yet the task's destination resource does not list the tag at that digest),
-- 'failed' (Failed or Stopped), 'running' (the attempt has not ended). Grain: one row per instance, policy,
-- src_repository and tag. Columns: instance_id, policy_id, policy_name, src_repository, tag, state,
-- status (the newest attempt's), digest, execution_id and task_id (of the newest attempt), attempted_at,
-- last_success_at (the newest Succeed attempt; NULL if none), failed_attempts_since_success (Failed or
-- Stopped attempts after it; all of them when it never succeeded), attempts, last_failure_at,
-- last_failure_text (the newest failed attempt's subtask status_text; NULL without subtasks), per_tag (the
-- newest attempt's status is the tag's own, from a subtask, not its task's).
WITH ranked AS (
    SELECT
        instance_id,
        policy_id,
        src_repository,
        tag,
        digest,
        execution_id,
        task_id,
        status,
        per_tag,
        status_text,
        attempted_at,
        on_destination,
        row_number() OVER (
            PARTITION BY instance_id, policy_id, src_repository, tag
            ORDER BY attempted_at DESC NULLS LAST, execution_id DESC, task_id DESC
        ) AS newest,
        max(attempted_at) FILTER (WHERE status = 'Succeed')
            OVER (PARTITION BY instance_id, policy_id, src_repository, tag) AS last_success_at
    FROM tag_attempts
),
summed AS (
    SELECT
        instance_id,
        policy_id,
        src_repository,
        tag,
        any_value(last_success_at) AS last_success_at,
        count(*) FILTER (
            WHERE status IN ('Failed', 'Stopped') AND (last_success_at IS NULL OR attempted_at > last_success_at)
        ) AS failed_attempts_since_success,
        count(*) AS attempts,
        max(attempted_at) FILTER (WHERE status IN ('Failed', 'Stopped')) AS last_failure_at,
        arg_max(status_text, coalesce(attempted_at, TIMESTAMPTZ '1970-01-01'))
            FILTER (WHERE status IN ('Failed', 'Stopped') AND status_text IS NOT NULL) AS last_failure_text
    FROM ranked
    GROUP BY ALL
)
SELECT
    n.instance_id,
    n.policy_id,
    p.name AS policy_name,
    n.src_repository,
    n.tag,
    CASE
        WHEN n.status = 'Succeed' AND n.on_destination = false THEN 'missing'
        WHEN n.status = 'Succeed' THEN 'replicated'
        WHEN n.status IN ('Failed', 'Stopped') THEN 'failed'
        ELSE 'running'
    END AS state,
    n.status,
    n.digest,
    n.execution_id,
    n.task_id,
    n.attempted_at,
    s.last_success_at,
    s.failed_attempts_since_success,
    s.attempts,
    s.last_failure_at,
    s.last_failure_text,
    n.per_tag
FROM ranked AS n
JOIN summed AS s
    ON s.instance_id = n.instance_id AND s.policy_id IS NOT DISTINCT FROM n.policy_id
        AND s.src_repository IS NOT DISTINCT FROM n.src_repository AND s.tag = n.tag
LEFT JOIN policies AS p ON p.instance_id = n.instance_id AND p.policy_id = n.policy_id
WHERE n.newest = 1
