DROP TABLE vault_grants;
DROP TABLE vault_secret_versions;
DROP TABLE vault_secrets;
DROP TABLE vault_environments;
DROP TABLE vault_data_keys;
DROP TABLE vault_tenants;
DROP TABLE vault_meta;
