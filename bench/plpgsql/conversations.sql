-- Reference: the conversation rules of source 001 (AI assistant platform migrations 003-006) in
-- PL/pgSQL, row by row, the way those migrations keep them. Benchmarks only; never installed by
-- the extension. Tables live in schema bench_plpgsql, shaped like the extension's
-- (bench/workloads/conversation_schema.py).
--
-- The document names its functions and triggers (in its rollback procedures) without printing
-- their bodies: update_updated_at_column() on conversations (trigger_conversations_updated_at),
-- update_conversation_timestamp() AFTER INSERT on messages (trigger_messages_update_conversation),
-- and increment_usage_metrics(UUID, UUID, DATE, INTEGER, INTEGER, DECIMAL). They are written here
-- as the document describes them: the conversation's updated_at, last_message_at and
-- message_count bumped by every message, and usage recorded by one upsert per message.
--
-- One rule is not the document's: a message's tenant_id filled from its conversation (a supplied
-- value that differs is refused; a missing conversation is a foreign-key violation), the rule of
-- the native trigger, written the way the document writes its triggers so that the variants do
-- the same work.

CREATE OR REPLACE FUNCTION bench_plpgsql.set_message_tenant_id()
RETURNS TRIGGER AS $$
DECLARE
  v_tenant_id uuid;
BEGIN
  SELECT tenant_id INTO v_tenant_id FROM bench_plpgsql.conversations WHERE id = NEW.conversation_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'conversation % does not exist', NEW.conversation_id USING ERRCODE = 'foreign_key_violation';
  END IF;
  IF NEW.tenant_id IS NULL THEN
    NEW.tenant_id := v_tenant_id;
  ELSIF NEW.tenant_id <> v_tenant_id THEN
    RAISE EXCEPTION 'message tenant_id does not match its conversation';
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION bench_plpgsql.update_conversation_timestamp()
RETURNS TRIGGER AS $$
BEGIN
  UPDATE bench_plpgsql.conversations
  SET updated_at = NOW(),
      last_message_at = NEW.created_at,
      message_count = message_count + 1
  WHERE id = NEW.conversation_id;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS trigger_conversations_updated_at ON bench_plpgsql.conversations;
CREATE TRIGGER trigger_conversations_updated_at BEFORE UPDATE ON bench_plpgsql.conversations
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.update_updated_at_column();
DROP TRIGGER IF EXISTS trigger_messages_set_tenant ON bench_plpgsql.conversation_messages;
CREATE TRIGGER trigger_messages_set_tenant BEFORE INSERT ON bench_plpgsql.conversation_messages
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.set_message_tenant_id();
DROP TRIGGER IF EXISTS trigger_messages_update_conversation ON bench_plpgsql.conversation_messages;
CREATE TRIGGER trigger_messages_update_conversation AFTER INSERT ON bench_plpgsql.conversation_messages
  FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.update_conversation_timestamp();

-- 006's usage upsert. Its table keeps total_tokens as a plain column that the function adds to
-- (the extension's is generated from input + output), and updated_at is set by the upsert itself.
CREATE OR REPLACE FUNCTION bench_plpgsql.increment_usage_metrics(
  p_tenant_id UUID,
  p_user_id UUID,
  p_date DATE,
  p_input_tokens INTEGER,
  p_output_tokens INTEGER,
  p_cost DECIMAL
)
RETURNS bench_plpgsql.usage_metrics AS $$
DECLARE
  v_result bench_plpgsql.usage_metrics;
BEGIN
  INSERT INTO bench_plpgsql.usage_metrics (
    tenant_id, user_id, date, message_count, input_tokens, output_tokens, total_tokens, estimated_cost
  )
  VALUES (
    p_tenant_id, p_user_id, p_date, 1, p_input_tokens, p_output_tokens, p_input_tokens + p_output_tokens, p_cost
  )
  ON CONFLICT (tenant_id, user_id, date)
  DO UPDATE SET
    message_count = usage_metrics.message_count + 1,
    input_tokens = usage_metrics.input_tokens + EXCLUDED.input_tokens,
    output_tokens = usage_metrics.output_tokens + EXCLUDED.output_tokens,
    total_tokens = usage_metrics.total_tokens + EXCLUDED.total_tokens,
    estimated_cost = usage_metrics.estimated_cost + EXCLUDED.estimated_cost,
    updated_at = NOW()
  RETURNING * INTO v_result;

  RETURN v_result;
END;
$$ LANGUAGE plpgsql;

-- Not in the document: the same upsert as a plain SQL function (the cheapest way to write it
-- without a native function), on its own identical table.
CREATE OR REPLACE FUNCTION bench_plpgsql.increment_usage_metrics_sql(
  p_tenant_id UUID,
  p_user_id UUID,
  p_date DATE,
  p_input_tokens INTEGER,
  p_output_tokens INTEGER,
  p_cost DECIMAL
)
RETURNS bench_plpgsql.usage_metrics_sql AS $$
  INSERT INTO bench_plpgsql.usage_metrics_sql AS u (
    tenant_id, user_id, date, message_count, input_tokens, output_tokens, total_tokens, estimated_cost
  )
  VALUES (
    p_tenant_id, p_user_id, p_date, 1, p_input_tokens, p_output_tokens, p_input_tokens + p_output_tokens, p_cost
  )
  ON CONFLICT (tenant_id, user_id, date)
  DO UPDATE SET
    message_count = u.message_count + 1,
    input_tokens = u.input_tokens + EXCLUDED.input_tokens,
    output_tokens = u.output_tokens + EXCLUDED.output_tokens,
    total_tokens = u.total_tokens + EXCLUDED.total_tokens,
    estimated_cost = u.estimated_cost + EXCLUDED.estimated_cost,
    updated_at = NOW()
  RETURNING u.*;
$$ LANGUAGE sql;
