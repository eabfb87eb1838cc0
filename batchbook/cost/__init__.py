"""The cost layer: dated prices (prices.json, refreshed by ``batchbook aws prices
--refresh`` into ``$BATCHBOOK_HOME/prices.json``), the estimate arithmetic and the cost of
attempts that ran. Pure: it reads files, never AWS, and imports nothing above itself."""
