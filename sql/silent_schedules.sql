-- Which scheduled policies stopped firing? For every enabled policy triggered by cron (trigger_cron, Harbor's
-- six fields, seconds first, UTC), the fires its cron called for since its newest scheduled execution (else
-- since the policy was created) against the executions seen: a fire counts as missed once 15 minutes (or half
-- the period, if shorter) have passed without an execution starting after it. silent: two or more fires
-- missed, i.e. the last execution is older than two periods (alerts_over's max_missed_runs sets the threshold
-- of the alert). Manual and event-based executions do not count as the schedule firing; disabled policies and
-- manual triggers are not listed. The fire times come from the tables schedules and schedule_fires, worked out
-- when the warehouse was built (every run; a warehouse older than a day is rebuilt when read), for up to 35
-- days back and 8 days ahead. Grain: one row per enabled scheduled policy. Columns: instance_id, policy_id,
-- policy_name, cron, cron_problem (why the cron does not read; the other columns are NULL then),
-- interval_hours (the shortest gap between fires), last_run_at (created_at of the newest scheduled execution;
-- NULL if none), last_fire_at (the newest fire due by now), next_fire_at, missed_runs (fires due after
-- counted_from), first_missed_at, fires_7d (fires due in the last 7 days), runs_7d (scheduled executions
-- created in the last 7 days), silent, counted_from (last_run_at, else the policy's creation, but no earlier
-- than covered_from), covered_from (the earliest fire time worked out).
WITH watched AS (
    SELECT p.instance_id, p.policy_id, p.name AS policy_name, p.trigger_cron AS cron, p.created_at
    FROM policies AS p
    WHERE p.trigger_type = 'scheduled' AND coalesce(p.enabled, true)
),
runs AS (
    SELECT
        e.instance_id,
        e.policy_id,
        max(e.created_at) AS last_run_at,
        count(*) FILTER (WHERE e.created_at > now() - INTERVAL 7 DAY) AS runs_7d
    FROM executions AS e
    WHERE coalesce(e.trigger, '') NOT IN ('manual', 'event_based')
    GROUP BY ALL
),
judged AS (
    SELECT
        w.instance_id,
        w.policy_id,
        w.policy_name,
        w.cron,
        s.cron_problem,
        s.interval_s,
        s.covered_from,
        r.last_run_at,
        coalesce(r.runs_7d, 0) AS runs_7d,
        greatest(coalesce(r.last_run_at, w.created_at, s.covered_from), s.covered_from) AS counted_from,
        least(INTERVAL 15 MINUTE, to_seconds(coalesce(s.interval_s, 1800) / 2)) AS grace
    FROM watched AS w
    LEFT JOIN schedules AS s ON s.instance_id = w.instance_id AND s.policy_id = w.policy_id
    LEFT JOIN runs AS r ON r.instance_id = w.instance_id AND r.policy_id = w.policy_id
),
counted AS (
    SELECT
        j.instance_id,
        j.policy_id,
        max(f.fire_at) FILTER (WHERE f.fire_at <= now()) AS last_fire_at,
        min(f.fire_at) FILTER (WHERE f.fire_at > now()) AS next_fire_at,
        count(f.fire_at) FILTER (WHERE f.fire_at > j.counted_from AND f.fire_at <= now() - j.grace) AS missed_runs,
        min(f.fire_at) FILTER (WHERE f.fire_at > j.counted_from AND f.fire_at <= now() - j.grace) AS first_missed_at,
        count(f.fire_at) FILTER (WHERE f.fire_at > now() - INTERVAL 7 DAY AND f.fire_at <= now() - j.grace)
            AS fires_7d
    FROM judged AS j
    LEFT JOIN schedule_fires AS f ON f.instance_id = j.instance_id AND f.policy_id = j.policy_id
    GROUP BY j.instance_id, j.policy_id
)
SELECT
    j.instance_id,
    j.policy_id,
    j.policy_name,
    j.cron,
    j.cron_problem,
    j.interval_s / 3600 AS interval_hours,
    j.last_run_at,
    c.last_fire_at,
    c.next_fire_at,
    CASE WHEN j.cron_problem IS NULL THEN c.missed_runs END AS missed_runs,
    c.first_missed_at,
    CASE WHEN j.cron_problem IS NULL THEN c.fires_7d END AS fires_7d,
    j.runs_7d,
    CASE WHEN j.cron_problem IS NULL THEN c.missed_runs >= 2 END AS silent,
    j.counted_from,
    j.covered_from
FROM judged AS j
JOIN counted AS c ON c.instance_id = j.instance_id AND c.policy_id = j.policy_id
ORDER BY j.instance_id, j.policy_id
