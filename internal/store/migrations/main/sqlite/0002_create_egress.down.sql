DROP TABLE IF EXISTS egress_address_exceptions;
DROP TABLE IF EXISTS egress_rules;
DROP TABLE IF EXISTS tenant_egress_policies;
