-- When did each policy, and each destination registry, last replicate successfully, and how long ago? An
-- execution counts as a success when its status is Succeed (every task replicated); its time is its
-- updated_at (when it ended), else its created_at. A destination registry's row takes every policy that
-- copies to it. Grain: one row per instance and policy (scope 'policy') and one per instance and destination
-- registry id (scope 'registry'). Columns: scope, instance_id, policy_id and policy_name (NULL for a registry
-- row), enabled (the policy's; for a registry, whether any of its policies is enabled), dest_registry_id,
-- dest_registry_name, policies (1, or how many policies copy to the registry), executions (seen in the
-- lake), last_execution_at (created_at of the newest), last_execution_status, last_success_at,
-- last_success_execution_id, hours_since_success (from now; NULL when it never succeeded).
WITH runs AS (
    SELECT
        p.instance_id,
        p.policy_id,
        p.name AS policy_name,
        coalesce(p.enabled, true) AS enabled,
        p.dest_registry_id,
        e.execution_id,
        e.status,
        e.created_at,
        coalesce(e.updated_at, e.created_at) AS ended_at
    FROM policies AS p
    LEFT JOIN executions AS e ON e.instance_id = p.instance_id AND e.policy_id = p.policy_id
),
both_scopes AS (
    SELECT
        CASE WHEN grouping(policy_id) = 0 THEN 'policy' ELSE 'registry' END AS scope,
        instance_id,
        policy_id,
        CASE WHEN grouping(policy_id) = 0 THEN any_value(policy_name) END AS policy_name,
        bool_or(enabled) AS enabled,
        coalesce(dest_registry_id, any_value(dest_registry_id)) AS dest_registry_id,
        count(DISTINCT policy_id) AS policies,
        count(execution_id) AS executions,
        max(created_at) AS last_execution_at,
        arg_max(status, (created_at, execution_id)) AS last_execution_status,
        max(ended_at) FILTER (WHERE status = 'Succeed') AS last_success_at,
        arg_max(execution_id, (ended_at, execution_id)) FILTER (WHERE status = 'Succeed') AS last_success_execution_id
    FROM runs
    GROUP BY GROUPING SETS ((instance_id, policy_id), (instance_id, dest_registry_id))
    HAVING grouping(policy_id) = 0 OR dest_registry_id IS NOT NULL
)
SELECT
    b.scope,
    b.instance_id,
    b.policy_id,
    b.policy_name,
    b.enabled,
    b.dest_registry_id,
    r.name AS dest_registry_name,
    b.policies,
    b.executions,
    b.last_execution_at,
    b.last_execution_status,
    b.last_success_at,
    b.last_success_execution_id,
    epoch(now() - b.last_success_at) / 3600 AS hours_since_success
FROM both_scopes AS b
LEFT JOIN registries AS r ON r.instance_id = b.instance_id AND r.registry_id = b.dest_registry_id
ORDER BY b.scope, b.instance_id, b.policy_id, b.dest_registry_id
