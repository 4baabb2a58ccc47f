DROP TABLE menu_roles;
DROP TABLE menu_items;
