-- Each service owns its database; PostgreSQL's image runs this once, when
-- its volume is first initialised (a new database later needs it by hand:
-- `docker compose exec postgres createdb -U choreo choreo_<name>`).
CREATE DATABASE choreo_order;
CREATE DATABASE choreo_inventory;
CREATE DATABASE choreo_payment;
CREATE DATABASE choreo_shipping;
CREATE DATABASE choreo_provider;
