-- Reference: the chat rules of source 003 ("critical fixes" migration) in PL/pgSQL, row by row,
-- as that migration writes them. Benchmarks only; never installed by the extension.
-- Tables live in schema bench_plpgsql, shaped like the extension's.

CREATE OR REPLACE FUNCTION bench_plpgsql.set_completed_at()
RETURNS TRIGGER AS $$
BEGIN
  IF NEW.is_completed = true AND (TG_OP = 'INSERT' OR OLD.is_completed = false) THEN
    NEW.completed_at = COALESCE(NEW.completed_at, NOW());
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.is_completed = true AND NEW.is_completed = false THEN
    RAISE EXCEPTION 'session % is completed and cannot be reopened', OLD.id;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION bench_plpgsql.calculate_session_duration()
RETURNS TRIGGER AS $$
BEGIN
  IF NEW.is_completed = true THEN
    NEW.duration_seconds = EXTRACT(EPOCH FROM (COALESCE(NEW.completed_at, NOW()) - NEW.started_at))::INTEGER;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION bench_plpgsql.update_profile_completion_counts()
RETURNS TRIGGER AS $$
BEGIN
  IF TG_OP = 'INSERT' AND NEW.is_completed THEN
    UPDATE bench_plpgsql.profiles
       SET total_completed_sessions = total_completed_sessions + 1,
           weekly_completed_sessions = weekly_completed_sessions + 1
     WHERE id = NEW.user_id;
  ELSIF TG_OP = 'UPDATE' AND NEW.is_completed AND NOT OLD.is_completed THEN
    UPDATE bench_plpgsql.profiles
       SET total_completed_sessions = total_completed_sessions + 1,
           weekly_completed_sessions = weekly_completed_sessions + 1
     WHERE id = NEW.user_id;
  ELSIF TG_OP = 'DELETE' AND OLD.is_completed THEN
    UPDATE bench_plpgsql.profiles
       SET total_completed_sessions = GREATEST(total_completed_sessions - 1, 0),
           weekly_completed_sessions = GREATEST(weekly_completed_sessions - 1, 0)
     WHERE id = OLD.user_id;
  END IF;
  RETURN COALESCE(NEW, OLD);
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION bench_plpgsql.prevent_messages_in_completed_sessions()
RETURNS TRIGGER AS $$
DECLARE
  v_completed boolean;
BEGIN
  SELECT is_completed INTO v_completed FROM bench_plpgsql.sessions WHERE id = NEW.session_id;
  IF v_completed THEN
    RAISE EXCEPTION 'cannot add messages to completed session %', NEW.session_id;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION bench_plpgsql.populate_user_id_on_insert()
RETURNS TRIGGER AS $$
BEGIN
  IF NEW.user_id IS NULL THEN
    SELECT user_id INTO NEW.user_id FROM bench_plpgsql.sessions WHERE id = NEW.session_id;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION bench_plpgsql.increment_message_count()
RETURNS TRIGGER AS $$
BEGIN
  IF NEW.chat_type = 'main' THEN
    UPDATE bench_plpgsql.sessions SET message_count_main = message_count_main + 1 WHERE id = NEW.session_id;
  ELSIF NEW.chat_type = 'helper' THEN
    UPDATE bench_plpgsql.sessions SET message_count_helper = message_count_helper + 1 WHERE id = NEW.session_id;
  ELSE
    RAISE EXCEPTION 'invalid chat_type: %', NEW.chat_type;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION bench_plpgsql.prevent_message_updates()
RETURNS TRIGGER AS $$
BEGIN
  RAISE EXCEPTION 'messages are immutable';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION bench_plpgsql.reset_weekly_limits()
RETURNS integer AS $$
DECLARE
  v_count integer;
BEGIN
  UPDATE bench_plpgsql.profiles
     SET weekly_completed_sessions = 0,
         week_reset_date = date_trunc('week', NOW() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + INTERVAL '1 week'
   WHERE week_reset_date <= NOW();
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END;
$$ LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp;

CREATE TRIGGER update_profiles_updated_at BEFORE UPDATE ON bench_plpgsql.profiles
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.update_updated_at_column();
CREATE TRIGGER update_sessions_updated_at BEFORE UPDATE ON bench_plpgsql.sessions
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.update_updated_at_column();
CREATE TRIGGER set_completed_at BEFORE INSERT OR UPDATE ON bench_plpgsql.sessions
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.set_completed_at();
CREATE TRIGGER trg_calculate_session_duration BEFORE INSERT OR UPDATE ON bench_plpgsql.sessions
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.calculate_session_duration();
CREATE TRIGGER maintain_profile_counts AFTER INSERT OR UPDATE OR DELETE ON bench_plpgsql.sessions
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.update_profile_completion_counts();
CREATE TRIGGER check_session_not_completed BEFORE INSERT ON bench_plpgsql.messages
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.prevent_messages_in_completed_sessions();
CREATE TRIGGER populate_user_id_on_insert BEFORE INSERT ON bench_plpgsql.messages
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.populate_user_id_on_insert();
CREATE TRIGGER on_message_created AFTER INSERT ON bench_plpgsql.messages
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.increment_message_count();
CREATE TRIGGER messages_immutable BEFORE UPDATE ON bench_plpgsql.messages
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.prevent_message_updates();

-- Not in the source documents, which leave the weekly limit to the application: the same rule
-- as the extension's (sessions started this week, never handed back), written the way the
-- documents write their triggers, so that one-row session inserts compare like for like.
CREATE OR REPLACE FUNCTION bench_plpgsql.enforce_weekly_session_limit()
RETURNS TRIGGER AS $$
DECLARE
  p record;
BEGIN
  SELECT weekly_started_sessions, weekly_session_limit, week_reset_date INTO p
    FROM bench_plpgsql.profiles WHERE id = NEW.user_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NEW;
  END IF;
  IF p.week_reset_date <= NOW() THEN
    UPDATE bench_plpgsql.profiles
       SET weekly_started_sessions = 1, weekly_completed_sessions = 0,
           week_reset_date = date_trunc('week', NOW() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + INTERVAL '1 week'
     WHERE id = NEW.user_id;
  ELSIF p.weekly_session_limit IS NOT NULL AND p.weekly_started_sessions >= p.weekly_session_limit THEN
    RAISE EXCEPTION 'weekly session limit reached';
  ELSE
    UPDATE bench_plpgsql.profiles SET weekly_started_sessions = weekly_started_sessions + 1 WHERE id = NEW.user_id;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER enforce_weekly_session_limit BEFORE INSERT ON bench_plpgsql.sessions
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.enforce_weekly_session_limit();

-- Not in the source documents either (their count only goes up): the decrement on delete, so
-- that one-row message deletes compare like for like with the native rule.
CREATE OR REPLACE FUNCTION bench_plpgsql.decrement_message_count()
RETURNS TRIGGER AS $$
BEGIN
  IF OLD.chat_type = 'main' THEN
    UPDATE bench_plpgsql.sessions SET message_count_main = GREATEST(message_count_main - 1, 0) WHERE id = OLD.session_id;
  ELSE
    UPDATE bench_plpgsql.sessions SET message_count_helper = GREATEST(message_count_helper - 1, 0) WHERE id = OLD.session_id;
  END IF;
  RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER on_message_deleted AFTER DELETE ON bench_plpgsql.messages
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.decrement_message_count();
