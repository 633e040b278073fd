-- What needs someone's attention now, by thresholds of your choosing? A table macro: SELECT ... FROM
-- alerts_over(max_failure_rate := 0.2, max_success_age := INTERVAL 50 HOUR, stuck_after := INTERVAL 2 HOUR,
-- max_missing_tags := 10, max_missed_runs := 3); the view alerts uses the defaults shown here, and swr-etl
-- check the thresholds it is given. Only enabled policies count, and of them only runs not started by hand: a
-- disabled policy or a manual run never alerts. A running execution is judged once it ends (or as stuck).
-- Kinds: 'failing': the policy's newest finished execution failed (Failed or Stopped tasks over finished
-- tasks) more than max_failure_rate (default 0.1; an execution with no task counted: its status); 'stale': a
-- scheduled policy with no execution that Succeed within max_success_age (default 26 hours) of now, nor a change to the policy; 'stuck':
-- tasks of the policy running (InProgress, Pending or Initialized) for longer than stuck_after (default 6
-- hours); 'missing_tags': more than max_missing_tags (default 0) source tags whose newest attempt in a
-- finished execution failed by its own subtask, or did not reach the destination (its task's destination
-- resource does not list it); a tag of a failed task without subtasks (--subtasks none) counts only then, and
-- a tag that failed and then replicated, even by hand, is not missing, and a tag whose newest attempt was a
-- manual run never alerts; policies gone from the newest policies listing never alert; 'silent': an enabled
-- scheduled policy whose cron called for more than max_missed_runs (default 1) executions that never came (see
-- silent_schedules). Grain: one row per policy and kind. Columns: instance_id, policy_id, policy_name, kind,
-- since (when the problem began: the first failing execution after the last good one, the last success or the
-- policy's creation, the oldest stuck start, the oldest missing tag's attempt, the first missed fire), value
-- (the failure rate, the hours since a success, the stuck tasks, the missing tags, the missed runs), detail
-- (one line for people).
CREATE MACRO alerts_over(
    max_failure_rate := 0.1,
    max_success_age := INTERVAL 26 HOUR,
    stuck_after := INTERVAL 6 HOUR,
    max_missing_tags := 0,
    max_missed_runs := 1
) AS TABLE
WITH watched AS (
    SELECT instance_id, policy_id, name AS policy_name, trigger_type, created_at, updated_at
    FROM policies
    WHERE coalesce(enabled, true)
        AND last_seen_run = (SELECT max(l.last_seen_run) FROM policies AS l WHERE l.instance_id = policies.instance_id)
),
runs AS (
    SELECT e.instance_id, e.policy_id, e.execution_id, e.status, e.created_at, e.updated_at
    FROM executions AS e
    JOIN watched AS w ON w.instance_id = e.instance_id AND w.policy_id = e.policy_id
    WHERE coalesce(e.trigger, '') <> 'manual'
),
counted AS (
    SELECT
        instance_id,
        execution_id,
        count(*) FILTER (WHERE status IN ('Succeed', 'Failed', 'Stopped')) AS finished,
        count(*) FILTER (WHERE status IN ('Failed', 'Stopped')) AS failures
    FROM tasks
    GROUP BY ALL
),
judged AS (
    SELECT
        r.instance_id,
        r.policy_id,
        r.execution_id,
        r.created_at,
        coalesce(c.failures / nullif(c.finished, 0), CASE WHEN r.status = 'Succeed' THEN 0.0 ELSE 1.0 END)
            AS failure_rate
    FROM runs AS r
    LEFT JOIN counted AS c ON c.instance_id = r.instance_id AND c.execution_id = r.execution_id
    WHERE r.status IN ('Succeed', 'Failed', 'Stopped')
),
streaks AS (
    SELECT
        instance_id,
        policy_id,
        execution_id,
        created_at,
        failure_rate,
        failure_rate > max_failure_rate AS bad,
        row_number() OVER (PARTITION BY instance_id, policy_id ORDER BY created_at DESC, execution_id DESC) AS age,
        max(CASE WHEN failure_rate <= max_failure_rate THEN created_at END)
            OVER (PARTITION BY instance_id, policy_id) AS last_good
    FROM judged
),
failing AS (
    SELECT
        n.instance_id,
        n.policy_id,
        'failing' AS kind,
        (SELECT min(s.created_at) FROM streaks AS s
         WHERE s.instance_id = n.instance_id AND s.policy_id = n.policy_id
             AND (n.last_good IS NULL OR s.created_at > n.last_good)) AS since,
        n.failure_rate AS value,
        format('execution {} failed {:.1f}% of its tasks (threshold {:.1f}%)',
            n.execution_id, 100 * n.failure_rate, 100 * max_failure_rate) AS detail
    FROM streaks AS n
    WHERE n.age = 1 AND n.bad
),
stale AS (
    SELECT
        w.instance_id,
        w.policy_id,
        'stale' AS kind,
        greatest(coalesce(max(r.updated_at) FILTER (WHERE r.status = 'Succeed'), w.created_at), w.updated_at)
            AS since,
        epoch(now() - since) / 3600 AS value,
        CASE
            WHEN since IS NOT DISTINCT FROM max(r.updated_at) FILTER (WHERE r.status = 'Succeed')
                THEN format('no execution has succeeded for {:.1f} hours (threshold {} hours)',
                    epoch(now() - since) / 3600, epoch(max_success_age) / 3600)
            WHEN max(r.updated_at) FILTER (WHERE r.status = 'Succeed') IS NULL AND since IS NOT DISTINCT FROM w.created_at
                THEN 'no execution has succeeded since the policy was created'
            ELSE format('no execution has succeeded since the policy was changed, {:.1f} hours ago', epoch(now() - since) / 3600)
        END AS detail
    FROM watched AS w
    LEFT JOIN runs AS r ON r.instance_id = w.instance_id AND r.policy_id = w.policy_id
    WHERE w.trigger_type = 'scheduled'
    GROUP BY w.instance_id, w.policy_id, w.created_at, w.updated_at
    HAVING greatest(coalesce(max(r.updated_at) FILTER (WHERE r.status = 'Succeed'), w.created_at), w.updated_at)
        < now() - max_success_age
),
stuck AS (
    SELECT
        t.instance_id,
        t.policy_id,
        'stuck' AS kind,
        min(t.start_time) AS since,
        count(*) AS value,
        format('{} task{} running for over {} hours, the oldest since {}',
            count(*), CASE WHEN count(*) = 1 THEN '' ELSE 's' END, epoch(stuck_after) / 3600, strftime(min(t.start_time) AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M UTC')) AS detail
    FROM tasks AS t
    JOIN watched AS w ON w.instance_id = t.instance_id AND w.policy_id = t.policy_id
    WHERE t.status IN ('InProgress', 'Pending', 'Initialized') AND t.start_time < now() - stuck_after
    GROUP BY ALL
),
newest_tags AS (
    SELECT
        a.instance_id,
        a.policy_id,
        a.src_repository,
        a.tag,
        a.trigger,
        a.status,
        a.status_text,
        a.attempted_at,
        a.on_destination,
        a.per_tag,
        row_number() OVER (
            PARTITION BY a.instance_id, a.policy_id, a.src_repository, a.tag
            ORDER BY a.attempted_at DESC NULLS LAST, a.execution_id DESC, a.task_id DESC
        ) AS newest
    FROM tag_attempts AS a
    JOIN watched AS w ON w.instance_id = a.instance_id AND w.policy_id = a.policy_id
    WHERE a.finished AND a.status IN ('Succeed', 'Failed', 'Stopped')
),
missing AS (
    SELECT
        n.instance_id,
        n.policy_id,
        'missing_tags' AS kind,
        min(n.attempted_at) AS since,
        count(*) AS value,
        format('{} tag{} not on the destination (threshold {}), e.g. {}{}',
            count(*), CASE WHEN count(*) = 1 THEN '' ELSE 's' END, max_missing_tags,
            min(n.src_repository || ':' || n.tag),
            coalesce(': ' || arg_min_null(n.status_text, n.src_repository || ':' || n.tag), '')) AS detail
    FROM newest_tags AS n
    WHERE n.newest = 1 AND coalesce(n.trigger, '') <> 'manual'
        AND (n.per_tag AND n.status <> 'Succeed' OR n.on_destination = false)
    GROUP BY n.instance_id, n.policy_id
    HAVING count(*) > max_missing_tags
),
silent AS (
    SELECT
        s.instance_id,
        s.policy_id,
        'silent' AS kind,
        s.first_missed_at AS since,
        s.missed_runs AS value,
        format('its schedule ({}) should have started {}{} execution{} {} and none came (threshold {})',
            s.cron, CASE WHEN s.counted_from = s.covered_from AND s.counted_from IS DISTINCT FROM s.last_run_at
                THEN 'at least ' ELSE '' END,
            s.missed_runs, CASE WHEN s.missed_runs = 1 THEN '' ELSE 's' END,
            CASE
                WHEN s.counted_from = s.last_run_at
                    THEN strftime(s.last_run_at AT TIME ZONE 'UTC', 'since %Y-%m-%d %H:%M UTC')
                WHEN s.counted_from > s.covered_from
                    THEN strftime(s.counted_from AT TIME ZONE 'UTC', 'since the policy was created or changed, %Y-%m-%d %H:%M UTC')
                ELSE format('in the {} days counted (its last scheduled execution: {})',
                    round(epoch(s.as_of - s.counted_from) / 86400)::INTEGER,
                    coalesce(strftime(s.last_run_at AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M UTC'), 'none seen'))
            END,
            max_missed_runs) AS detail
    FROM silent_schedules AS s
    WHERE s.missed_runs > max_missed_runs
),
found AS (
    SELECT instance_id, policy_id, kind, since, value, detail FROM failing
    UNION ALL SELECT instance_id, policy_id, kind, since, value, detail FROM silent
    UNION ALL SELECT instance_id, policy_id, kind, since, value, detail FROM stale
    UNION ALL SELECT instance_id, policy_id, kind, since, value, detail FROM stuck
    UNION ALL SELECT instance_id, policy_id, kind, since, value, detail FROM missing
)
SELECT f.instance_id, f.policy_id, w.policy_name, f.kind, f.since, f.value::DOUBLE AS value, f.detail
FROM found AS f
JOIN watched AS w ON w.instance_id = f.instance_id AND w.policy_id = f.policy_id
ORDER BY f.instance_id, f.policy_id, f.kind
