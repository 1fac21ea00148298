-- Reference: the behavior summaries of source 000 ("behavior tracking" migration) in PL/pgSQL,
-- row by row, the way that migration keeps them: update_behavior_insights_on_event() fired
-- AFTER INSERT FOR EACH ROW on behavior_events (its trigger_update_insights_on_event), upserting
-- the customer's behavior_insights row and the session's behavior_sessions row, and
-- update_updated_at_column() on both summary tables. Benchmarks only; never installed by the
-- extension. Tables live in schema bench_plpgsql, shaped like the extension's.
--
-- The document names the function but does not print its body; this one is written to keep the
-- summaries exact under the same rules as the native trigger (DESIGN.md 3.3): events may arrive
-- out of order (first and last are min and max, last_session_id is the session of the latest
-- event, ties by the greater session id), tools_used distinct and sorted, whole days and seconds
-- rounded down and never negative. bench/workloads/behavior_events.py checks both against a
-- recount from the events before it measures anything.

CREATE OR REPLACE FUNCTION bench_plpgsql.update_behavior_insights_on_event()
RETURNS TRIGGER AS $$
DECLARE
  v_high integer := CASE WHEN NEW.business_impact IN ('high', 'critical') THEN 1 ELSE 0 END;
  v_new_session boolean;
BEGIN
  -- The session's summary: created by its first event, widened by every later one.
  INSERT INTO bench_plpgsql.behavior_sessions AS s
    (session_id, customer_id, started_at, ended_at, event_count, high_impact_count, tools_used, duration_seconds)
  VALUES
    (NEW.session_id, NEW.customer_id, NEW.event_timestamp, NEW.event_timestamp, 1, v_high,
     CASE WHEN NEW.tool_name IS NULL THEN '{}'::text[] ELSE ARRAY[NEW.tool_name] END, 0)
  ON CONFLICT (session_id) DO UPDATE SET
    started_at = LEAST(s.started_at, EXCLUDED.started_at),
    ended_at = GREATEST(s.ended_at, EXCLUDED.ended_at),
    event_count = s.event_count + 1,
    high_impact_count = s.high_impact_count + EXCLUDED.high_impact_count,
    tools_used = CASE WHEN NEW.tool_name IS NULL OR NEW.tool_name = ANY (s.tools_used) THEN s.tools_used
                      ELSE ARRAY(SELECT t FROM unnest(s.tools_used || NEW.tool_name) t ORDER BY t) END,
    duration_seconds = GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (GREATEST(s.ended_at, EXCLUDED.ended_at)
                                                          - LEAST(s.started_at, EXCLUDED.started_at)))))::INTEGER
  RETURNING (xmax = 0) INTO v_new_session;

  -- The customer's insights: created by their first event, counted up by every later one.
  INSERT INTO bench_plpgsql.behavior_insights AS bi
    (customer_id, total_events, events_by_type, high_impact_events, session_count, first_event_at,
     last_session_timestamp, last_session_id, days_since_last_activity)
  VALUES
    (NEW.customer_id, 1, jsonb_build_object(NEW.event_type, 1), v_high,
     CASE WHEN v_new_session THEN 1 ELSE 0 END, NEW.event_timestamp, NEW.event_timestamp, NEW.session_id,
     GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (NOW() - NEW.event_timestamp)) / 86400))::INTEGER)
  ON CONFLICT (customer_id) DO UPDATE SET
    total_events = bi.total_events + 1,
    events_by_type = bi.events_by_type
                     || jsonb_build_object(NEW.event_type, COALESCE((bi.events_by_type ->> NEW.event_type)::bigint, 0) + 1),
    high_impact_events = bi.high_impact_events + EXCLUDED.high_impact_events,
    session_count = bi.session_count + EXCLUDED.session_count,
    first_event_at = LEAST(bi.first_event_at, EXCLUDED.first_event_at),
    last_session_id = CASE WHEN bi.last_session_timestamp IS NULL
                             OR EXCLUDED.last_session_timestamp > bi.last_session_timestamp
                             OR (EXCLUDED.last_session_timestamp = bi.last_session_timestamp
                                 AND EXCLUDED.last_session_id > bi.last_session_id)
                           THEN EXCLUDED.last_session_id ELSE bi.last_session_id END,
    last_session_timestamp = GREATEST(bi.last_session_timestamp, EXCLUDED.last_session_timestamp),
    days_since_last_activity = GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (
                                 NOW() - GREATEST(bi.last_session_timestamp, EXCLUDED.last_session_timestamp))) / 86400))::INTEGER;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS trigger_update_insights_on_event ON bench_plpgsql.behavior_events;
CREATE TRIGGER trigger_update_insights_on_event AFTER INSERT ON bench_plpgsql.behavior_events
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.update_behavior_insights_on_event();

DROP TRIGGER IF EXISTS update_behavior_events_updated_at ON bench_plpgsql.behavior_events;
CREATE TRIGGER update_behavior_events_updated_at BEFORE UPDATE ON bench_plpgsql.behavior_events
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.update_updated_at_column();
DROP TRIGGER IF EXISTS update_behavior_insights_updated_at ON bench_plpgsql.behavior_insights;
CREATE TRIGGER update_behavior_insights_updated_at BEFORE UPDATE ON bench_plpgsql.behavior_insights
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.update_updated_at_column();
DROP TRIGGER IF EXISTS update_behavior_sessions_updated_at ON bench_plpgsql.behavior_sessions;
CREATE TRIGGER update_behavior_sessions_updated_at BEFORE UPDATE ON bench_plpgsql.behavior_sessions
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.update_updated_at_column();
