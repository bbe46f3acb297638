-- paygate keeps one database per domain; `payments` is created by the image.
CREATE DATABASE merchants;
CREATE DATABASE providers;
CREATE DATABASE logs;
-- The demo shop's own database (`paygate-demo serve`).
CREATE DATABASE demo_shop;
