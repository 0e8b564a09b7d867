<?php
// The site title belongs to the site's row (wordpress.title, passed as WP_SITE_TITLE): once WordPress is
// installed, a different title is set back, so the row stays the one source of truth.
add_action('init', function (): void {
    $title = getenv('WP_SITE_TITLE');
    if ($title === false || $title === '' || wp_installing() || !is_blog_installed()) {
        return;
    }
    if (get_option('blogname') !== $title) {
        update_option('blogname', $title);
    }
});
