-- Every change to the tokens table, whoever makes it (a replica, an import, an operator in psql), is announced
-- on the channel modelreg_tokens when its transaction commits: replicas keep the tokens they checked until
-- then, instead of reading the token at every request. (The function is one line: the migration runner ends a
-- statement at a line that ends in a semicolon.)
CREATE FUNCTION modelreg_tokens_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('modelreg_tokens', ''); RETURN NULL; END $$;
CREATE TRIGGER tokens_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tokens
    FOR EACH STATEMENT EXECUTE FUNCTION modelreg_tokens_changed();
