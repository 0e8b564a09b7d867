<?php
// WordPress configuration of a reconciler-managed site: everything comes from the container's environment
// (set by the reconciler from the site row and the site_secrets table); nothing is written to disk.
function erp_env(string $name, string $default = ''): string {
    $value = getenv($name);
    return $value === false ? $default : $value;
}
define('DB_NAME', erp_env('WP_DB_NAME', 'wordpress'));
define('DB_USER', erp_env('WP_DB_USER', 'wordpress'));
define('DB_PASSWORD', erp_env('WP_DB_PASSWORD'));
define('DB_HOST', erp_env('WP_DB_HOST', 'db'));
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
foreach (['AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY',
          'AUTH_SALT', 'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT'] as $erp_key) {
    define($erp_key, erp_env('WP_' . $erp_key));
}
$table_prefix = 'wp_';
define('WPMU_PLUGIN_DIR', '/usr/local/share/wp-static/mu-plugins'); // from the image
define('WP_CONTENT_DIR', '/data/wp-content'); // the site's volume: uploads, themes, plugins
define('WP_AUTO_UPDATE_CORE', false);
define('DISALLOW_FILE_EDIT', true);
define('FS_METHOD', 'direct');
define('WP_DEBUG', false);
if (!defined('ABSPATH')) {
    define('ABSPATH', '/usr/share/wordpress/');
}
require_once ABSPATH . 'wp-settings.php';
