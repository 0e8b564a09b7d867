<?php
// Nginx (on the host, without WordPress's files) sends every request that names neither a .php script nor a
// directory here. Static files of WordPress core (/usr/share/wordpress) and of wp-content (the site's volume) are
// sent from this FPM container: only regular files with a known extension, a path that leaves the two roots (..,
// symlinks) is a 404. Any other path is a pretty permalink: WordPress's index.php answers it.
$types = [
    'css' => 'text/css', 'js' => 'application/javascript', 'json' => 'application/json',
    'png' => 'image/png', 'jpg' => 'image/jpeg', 'jpeg' => 'image/jpeg', 'gif' => 'image/gif',
    'webp' => 'image/webp', 'svg' => 'image/svg+xml', 'ico' => 'image/x-icon', 'txt' => 'text/plain',
    'woff' => 'font/woff', 'woff2' => 'font/woff2', 'ttf' => 'font/ttf', 'pdf' => 'application/pdf',
    'html' => 'text/html', 'xml' => 'application/xml', 'mp4' => 'video/mp4', 'mp3' => 'audio/mpeg',
];
$path = rawurldecode(parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/');
$content = '/data/wp-content';
if (str_starts_with($path, '/wp-content/')) {
    $file = realpath($content . substr($path, strlen('/wp-content')));
    $root = realpath($content);
} else {
    $file = realpath('/usr/share/wordpress' . $path);
    $root = '/usr/share/wordpress';
}
$ext = strtolower(pathinfo((string) $file, PATHINFO_EXTENSION));
$inside = $file !== false && $root !== false && str_starts_with($file, $root . '/');
if (!$inside || !is_file($file) || !isset($types[$ext])) {
    if (!str_starts_with($path, '/wp-content/') && !str_starts_with($path, '/wp-includes/')
        && !str_starts_with($path, '/wp-admin/')) {
        $_SERVER['SCRIPT_NAME'] = '/index.php';
        $_SERVER['PHP_SELF'] = '/index.php';
        $_SERVER['SCRIPT_FILENAME'] = '/usr/share/wordpress/index.php';
        chdir('/usr/share/wordpress');
        require '/usr/share/wordpress/index.php';
        exit;
    }
    http_response_code(404);
    header('Content-Type: text/plain');
    echo "not found\n";
    exit;
}
header('Content-Type: ' . $types[$ext]);
header('Content-Length: ' . filesize($file));
header('Cache-Control: public, max-age=3600');
readfile($file);
