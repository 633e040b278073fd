-- Where does each replication policy copy from and to, and are those registries healthy? Grain: one row per
-- policy (every policy ever listed). Columns: instance_id, policy_id, policy_name, enabled, dest_namespace,
-- src_registry_id, src_registry_name, src_registry_type, src_registry_url, src_registry_status,
-- dest_registry_id, dest_registry_name, dest_registry_type, dest_registry_url, dest_registry_status
-- (healthy or unhealthy, as the API says), targets_healthy (both registries known and healthy; NULL when
-- either is not in the registries table). A registry not listed (or an id such as 0 the instance does not
-- list) leaves its columns NULL.
SELECT
    p.instance_id,
    p.policy_id,
    p.name AS policy_name,
    p.enabled,
    p.dest_namespace,
    p.src_registry_id,
    s.name AS src_registry_name,
    s.type AS src_registry_type,
    s.url AS src_registry_url,
    s.status AS src_registry_status,
    p.dest_registry_id,
    d.name AS dest_registry_name,
    d.type AS dest_registry_type,
    d.url AS dest_registry_url,
    d.status AS dest_registry_status,
    CASE
        WHEN s.registry_id IS NULL OR d.registry_id IS NULL THEN NULL
        ELSE s.status = 'healthy' AND d.status = 'healthy'
    END AS targets_healthy
FROM policies AS p
LEFT JOIN registries AS s ON s.instance_id = p.instance_id AND s.registry_id = p.src_registry_id
LEFT JOIN registries AS d ON d.instance_id = p.instance_id AND d.registry_id = p.dest_registry_id
ORDER BY p.instance_id, p.policy_id
