-- Which scheduled policies stopped firing? For every enabled policy triggered by cron (trigger_cron, Harbor's
-- six fields, seconds first, UTC) that the newest policies listing of its instance still showed, the fires
-- its cron called for against the scheduled executions seen. Everything is judged as of as_of: when the
-- instance's executions were last listed (the newest last_seen_run among them; else its policies'), or now
-- if that is earlier, so that an old lake, or a check between runs, does not count as missed the fires
-- whose executions were never asked for. A fire is missed once 15 minutes (or half the period, if shorter)
-- have passed before as_of without a scheduled execution after it; an execution created within that grace
-- before a fire (clock skew) serves it. Counting starts at the newest scheduled execution, else the
-- policy's creation, and at its last change if later (a policy re-enabled or switched to a schedule is not
-- silent for the time it was not). silent: two or more fires missed, i.e. the last execution is older than
-- two periods (alerts_over's max_missed_runs sets the threshold of the alert). Manual and event-based
-- executions do not count as the schedule firing; disabled policies, manual triggers and policies gone from
-- the listing are not listed. The fire times come from the tables schedules and schedule_fires, worked out
-- when the warehouse was built (every run; a warehouse older than a day is rebuilt when read), for up to 35
-- days back and 8 days ahead. Grain: one row per enabled scheduled policy. Columns: instance_id, policy_id,
-- policy_name, cron, cron_problem (why the cron does not read; the counts are NULL then), interval_hours
-- (the shortest gap between fires), last_run_at (created_at of the newest scheduled execution; NULL if
-- none), last_fire_at (the newest fire due by as_of), next_fire_at, missed_runs (fires missed after
-- counted_from), first_missed_at, fires_7d (fires due in the 7 days before as_of), runs_7d (scheduled
-- executions created in those 7 days), silent, as_of, counted_from (last_run_at, else the policy's creation;
-- its last change if later; no earlier than covered_from), covered_from (the earliest fire time worked out).
WITH listed AS (
    SELECT instance_id, max(last_seen_run) AS newest_policies_run
    FROM policies
    GROUP BY ALL
),
watched AS (
    SELECT
        p.instance_id,
        p.policy_id,
        p.name AS policy_name,
        p.trigger_cron AS cron,
        p.created_at,
        p.updated_at
    FROM policies AS p
    JOIN listed AS l ON l.instance_id = p.instance_id AND p.last_seen_run = l.newest_policies_run
    WHERE p.trigger_type = 'scheduled' AND coalesce(p.enabled, true)
),
asked AS (
    SELECT
        l.instance_id,
        least(now(), timezone('UTC', try_strptime(left(coalesce(max(e.last_seen_run), l.newest_policies_run), 18),
            '%Y%m%dT%H%M%S%g'))) AS listed_at
    FROM listed AS l
    LEFT JOIN executions AS e ON e.instance_id = l.instance_id
    GROUP BY l.instance_id, l.newest_policies_run
),
runs AS (
    SELECT
        e.instance_id,
        e.policy_id,
        max(e.created_at) AS last_run_at
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
        coalesce(a.listed_at, now()) AS as_of,
        greatest(coalesce(r.last_run_at, w.created_at, s.covered_from), w.updated_at, s.covered_from)
            AS counted_from,
        least(INTERVAL 15 MINUTE, to_seconds(coalesce(s.interval_s, 1800) / 2)) AS grace
    FROM watched AS w
    LEFT JOIN schedules AS s ON s.instance_id = w.instance_id AND s.policy_id = w.policy_id
    LEFT JOIN runs AS r ON r.instance_id = w.instance_id AND r.policy_id = w.policy_id
    LEFT JOIN asked AS a ON a.instance_id = w.instance_id
),
counted AS (
    SELECT
        j.instance_id,
        j.policy_id,
        max(f.fire_at) FILTER (WHERE f.fire_at <= j.as_of) AS last_fire_at,
        min(f.fire_at) FILTER (WHERE f.fire_at > j.as_of) AS next_fire_at,
        count(f.fire_at) FILTER (WHERE f.fire_at > j.counted_from + j.grace AND f.fire_at <= j.as_of - j.grace)
            AS missed_runs,
        min(f.fire_at) FILTER (WHERE f.fire_at > j.counted_from + j.grace AND f.fire_at <= j.as_of - j.grace)
            AS first_missed_at,
        count(f.fire_at) FILTER (WHERE f.fire_at > j.as_of - INTERVAL 7 DAY AND f.fire_at <= j.as_of - j.grace)
            AS fires_7d
    FROM judged AS j
    LEFT JOIN schedule_fires AS f ON f.instance_id = j.instance_id AND f.policy_id = j.policy_id
    GROUP BY j.instance_id, j.policy_id
),
recent AS (
    SELECT j.instance_id, j.policy_id, count(e.execution_id) AS runs_7d
    FROM judged AS j
    LEFT JOIN executions AS e
        ON e.instance_id = j.instance_id AND e.policy_id = j.policy_id
            AND coalesce(e.trigger, '') NOT IN ('manual', 'event_based')
            AND e.created_at > j.as_of - INTERVAL 7 DAY AND e.created_at <= j.as_of
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
    n.runs_7d,
    CASE WHEN j.cron_problem IS NULL THEN c.missed_runs >= 2 END AS silent,
    j.as_of,
    j.counted_from,
    j.covered_from
FROM judged AS j
JOIN counted AS c ON c.instance_id = j.instance_id AND c.policy_id = j.policy_id
JOIN recent AS n ON n.instance_id = j.instance_id AND n.policy_id = j.policy_id
ORDER BY j.instance_id, j.policy_id
