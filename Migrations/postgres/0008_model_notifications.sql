-- Every change to a model's count is announced on the channel modelreg_models when its transaction commits, as
-- "<count> <name>": replicas keep the count each model had when they last heard of it instead of reading it at
-- every request. A row deleted by hand is announced with a new count; a TRUNCATE with an empty payload (forget
-- every count). (Each function is one line: the migration runner ends a statement at a line that ends in a
-- semicolon.)
CREATE FUNCTION modelreg_model_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF TG_OP = 'DELETE' THEN PERFORM pg_notify('modelreg_models', nextval('model_changes') || ' ' || OLD.name); ELSE PERFORM pg_notify('modelreg_models', NEW.change_count || ' ' || NEW.name); END IF; RETURN NULL; END $$;
CREATE TRIGGER model_changed AFTER INSERT OR DELETE OR UPDATE OF change_count ON models
    FOR EACH ROW EXECUTE FUNCTION modelreg_model_changed();
CREATE FUNCTION modelreg_models_truncated() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('modelreg_models', ''); RETURN NULL; END $$;
CREATE TRIGGER models_truncated AFTER TRUNCATE ON models
    FOR EACH STATEMENT EXECUTE FUNCTION modelreg_models_truncated();
