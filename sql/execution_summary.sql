-- How did each execution go, by our own count of its tasks, and does the API agree? Grain: one row per
-- execution ever listed (executions whose tasks were never fetched, or that have none, show tasks = 0).
-- Columns: instance_id, instance_name, execution_id, policy_id, policy_name, trigger, status (the API's),
-- tasks, succeeded, failed, stopped, in_progress (InProgress, Pending or Initialized) counted from the tasks
-- table; success_rate (succeeded / finished, where finished is Succeed, Failed or Stopped; NULL when none
-- finished); first_start (earliest task start), last_end (latest task end), wall_duration_s (seconds from
-- first_start to last_end); the API's own counters api_total, api_succeed, api_failed, api_stopped,
-- api_in_progress; counters_disagree (true when any API counter differs from ours, or is missing).
WITH counted AS (
    SELECT
        instance_id,
        execution_id,
        count(*) AS tasks,
        count(*) FILTER (WHERE status = 'Succeed') AS succeeded,
        count(*) FILTER (WHERE status = 'Failed') AS failed,
        count(*) FILTER (WHERE status = 'Stopped') AS stopped,
        count(*) FILTER (WHERE status IN ('InProgress', 'Pending', 'Initialized')) AS in_progress,
        min(start_time) AS first_start,
        max(end_time) AS last_end
    FROM tasks
    GROUP BY instance_id, execution_id
),
ours AS (
    SELECT
        e.instance_id,
        e.execution_id,
        e.policy_id,
        e.trigger,
        e.status,
        coalesce(c.tasks, 0) AS tasks,
        coalesce(c.succeeded, 0) AS succeeded,
        coalesce(c.failed, 0) AS failed,
        coalesce(c.stopped, 0) AS stopped,
        coalesce(c.in_progress, 0) AS in_progress,
        c.first_start,
        c.last_end,
        e.total AS api_total,
        e.succeed AS api_succeed,
        e.failed AS api_failed,
        e.stopped AS api_stopped,
        e.in_progress AS api_in_progress
    FROM executions AS e
    LEFT JOIN counted AS c ON c.instance_id = e.instance_id AND c.execution_id = e.execution_id
)
SELECT
    o.instance_id,
    i.name AS instance_name,
    o.execution_id,
    o.policy_id,
    p.name AS policy_name,
    o.trigger,
    o.status,
    o.tasks,
    o.succeeded,
    o.failed,
    o.stopped,
    o.in_progress,
    o.succeeded / nullif(o.succeeded + o.failed + o.stopped, 0) AS success_rate,
    o.first_start,
    o.last_end,
    epoch(o.last_end - o.first_start) AS wall_duration_s,
    o.api_total,
    o.api_succeed,
    o.api_failed,
    o.api_stopped,
    o.api_in_progress,
    (
        o.api_total IS DISTINCT FROM o.tasks
        OR o.api_succeed IS DISTINCT FROM o.succeeded
        OR o.api_failed IS DISTINCT FROM o.failed
        OR o.api_stopped IS DISTINCT FROM o.stopped
        OR o.api_in_progress IS DISTINCT FROM o.in_progress
    ) AS counters_disagree
FROM ours AS o
LEFT JOIN instances AS i ON i.instance_id = o.instance_id
LEFT JOIN policies AS p ON p.instance_id = o.instance_id AND p.policy_id = o.policy_id
