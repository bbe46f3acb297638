-- paygate keeps one database per domain; `payments` is created by the image.
CREATE DATABASE merchants;
CREATE DATABASE providers;
CREATE DATABASE logs;
