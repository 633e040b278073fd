-- Why do tags fail to replicate, per policy and destination registry? Each Failed subtask (one tag of a task,
-- fetched with --subtasks) is put in a class by its status_text: 'quota' (429, too many requests, rate limit,
-- quota), 'auth' (unauthorized, authentication required, HTTP 401 or 403, denied, forbidden), 'not_found'
-- (manifest or blob unknown, not found, HTTP 404), 'network' (timeouts, connection reset or refused, TLS
-- handshake, no such host, dial tcp), 'destination' (HTTP 5xx from the registry, internal server error, bad
-- gateway, blob upload unknown, maintenance), else 'unknown'; the first that matches wins, in that order.
-- Grain: one row per instance, policy and class. Columns: instance_id, policy_id, policy_name,
-- dest_registry_id, dest_registry_name, reason (the class), failed_tags (Failed subtasks), tasks (distinct
-- tasks), last_failure (the newest end_time, else start_time), example (the newest status_text of the class).
WITH failed AS (
    SELECT
        s.instance_id,
        e.policy_id,
        s.task_id,
        s.status_text,
        coalesce(s.end_time, s.start_time) AS failed_at,
        lower(coalesce(s.status_text, '')) AS text
    FROM subtasks AS s
    LEFT JOIN executions AS e ON e.instance_id = s.instance_id AND e.execution_id = s.execution_id
    WHERE s.status = 'Failed'
),
classed AS (
    SELECT
        instance_id,
        policy_id,
        task_id,
        status_text,
        failed_at,
        CASE
            WHEN regexp_matches(text, '(status code: 429|429 too many requests|toomanyrequests|too many requests|rate limit|quota)')
                THEN 'quota'
            WHEN regexp_matches(text, '(unauthorized|authentication required|status code: 401|status code: 403|denied|forbidden)')
                THEN 'auth'
            WHEN regexp_matches(text, '(manifest unknown|blob unknown|name unknown|not found|status code: 404)')
                THEN 'not_found'
            WHEN regexp_matches(text, '(i/o timeout|connection reset|connection refused|tls handshake|no such host|context deadline exceeded|client\.timeout|dial tcp)')
                THEN 'network'
            WHEN regexp_matches(text, '(status code: 5[0-9][0-9]|internal server error|bad gateway|service unavailable|blob upload unknown|maintenance)')
                THEN 'destination'
            ELSE 'unknown'
        END AS reason
    FROM failed
)
SELECT
    c.instance_id,
    c.policy_id,
    p.name AS policy_name,
    p.dest_registry_id,
    r.name AS dest_registry_name,
    c.reason,
    count(*) AS failed_tags,
    count(DISTINCT c.task_id) AS tasks,
    max(c.failed_at) AS last_failure,
    arg_max(c.status_text, c.failed_at) AS example
FROM classed AS c
LEFT JOIN policies AS p ON p.instance_id = c.instance_id AND p.policy_id = c.policy_id
LEFT JOIN registries AS r ON r.instance_id = c.instance_id AND r.registry_id = p.dest_registry_id
GROUP BY c.instance_id, c.policy_id, p.name, p.dest_registry_id, r.name, c.reason
ORDER BY c.instance_id, c.policy_id, failed_tags DESC, c.reason
