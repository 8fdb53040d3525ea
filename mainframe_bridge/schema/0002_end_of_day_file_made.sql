-- The end-of-day file's creation time and sequence number, kept when it is first built: the file
-- is otherwise the day's posted postings, so the standby that takes the lease over (its own folder
-- holds no file) builds the same bytes, and the mainframe answers them as it did the first time.
ALTER TABLE business_days ADD COLUMN file_created TEXT;
ALTER TABLE business_days ADD COLUMN file_sequence INTEGER;
