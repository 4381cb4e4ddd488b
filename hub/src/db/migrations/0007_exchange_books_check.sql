-- The exchange decides on the books as it last committed them, held in memory, and writes in one
-- statement that checks every row it decided on is still as it was (hub/src/exchange/exchange-books.ts).
-- When one is not (a deposit, an exit, a settlement or another replica changed it), this aborts the
-- statement, and with it every write of the batch, which is then decided again on locked rows.
CREATE FUNCTION chit_require_unchanged_books(unchanged boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF NOT unchanged THEN
    RAISE EXCEPTION 'the exchange books changed since the batch read them' USING ERRCODE = 'CHB01';
  END IF;
  RETURN true;
END
$$;
