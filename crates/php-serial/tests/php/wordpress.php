<?php
// Usage: php wordpress.php emit FROM TO
//          prints "name base64(stored at FROM) base64(stored at TO)" for WordPress-shaped
//          options and metas, stored as WordPress stores them (maybe_serialize()).
//        php wordpress.php check TO
//          reads "name base64(rewritten)" lines and prints "ok" or "FAIL name: why": the
//          rewritten bytes must unserialize to the value built for TO, and serialize back
//          to themselves.

class Acme_Settings
{
    private $endpoint;
    protected $links;
    public $label = 'Acme';

    public function __construct(string $u)
    {
        $this->endpoint = "$u/wp-json/acme/v1";
        $this->links = ['home' => $u, 'login' => "$u/wp-login.php?redirect_to=" . rawurlencode("$u/wp-admin/")];
    }
}

class Legacy implements Serializable
{
    public $d;

    public function __construct($d)
    {
        $this->d = $d;
    }

    public function serialize()
    {
        return serialize($this->d);
    }

    public function unserialize($s)
    {
        $this->d = unserialize($s);
    }
}

// As WordPress: arrays and objects are serialized, strings that are already serialized
// are serialized again, other strings are stored as they are.
function maybe_serialize($data)
{
    if (is_array($data) || is_object($data)) {
        return serialize($data);
    }
    if (is_string($data) && @unserialize($data) !== false) {
        return serialize($data);
    }
    return $data;
}

function relative(string $u): string
{
    return preg_replace('#^https?:#i', '', $u);
}

function cases(): array
{
    return [
        'siteurl' => fn ($u) => $u,
        'widget_text' => fn ($u) => [
            2 => [
                'title' => 'Contact',
                'text' => "<p>Write to us at <a href=\"$u/contact/\">our page</a>, not at <a href=\"http://127.0.0.1:80812/\">the other site</a>.</p>",
                'filter' => true,
                'visual' => true,
            ],
            3 => [],
            '_multiwidget' => 1,
        ],
        'theme_mods_twentytwentyone' => fn ($u) => [
            0 => false,
            'nav_menu_locations' => ['primary' => 2, 'footer' => 3],
            'custom_css_post_id' => -1,
            'header_image' => "$u/wp-content/uploads/2024/05/header.jpg",
            'header_image_data' => (object) [
                'attachment_id' => 7,
                'url' => "$u/wp-content/uploads/2024/05/header.jpg",
                'thumbnail_url' => "$u/wp-content/uploads/2024/05/header-150x150.jpg",
                'height' => 1200,
                'width' => 2000,
            ],
            'background_color' => 'd1e4dd',
        ],
        'wp_user_roles' => fn ($u) => [
            'administrator' => ['name' => 'Administrator', 'capabilities' => ['switch_themes' => true, 'edit_themes' => true, 'manage_options' => true, 'level_10' => true]],
            'editor' => ['name' => 'Editor', 'capabilities' => ['moderate_comments' => true, 'edit_posts' => true, 'level_7' => true]],
            'subscriber' => ['name' => 'Subscriber', 'capabilities' => ['read' => true, 'level_0' => true]],
        ],
        '_elementor_data' => fn ($u) => json_encode([[
            'id' => 'a1b2',
            'elType' => 'section',
            'settings' => ['background_image' => ['url' => "$u/wp-content/uploads/bg.jpg", 'id' => 12]],
            'elements' => [['widgetType' => 'button', 'settings' => ['link' => ['url' => "$u/shop/", 'is_external' => '']]]],
        ]]),
        '_transient_feed' => fn ($u) => [
            'fetched' => 1700000000,
            'items' => [['link' => "$u/?p=1", 'title' => 'Hello ünïcödé 日本語 😀']],
        ],
        'double_serialized_meta' => fn ($u) => serialize(['url' => "$u/sub/page", 'ratio' => 1.5]),
        'triple_serialized' => fn ($u) => serialize(serialize([$u, 'x'])),
        'acme_settings' => fn ($u) => new Acme_Settings($u),
        'legacy_serializable' => fn ($u) => new Legacy(['home' => $u, 'n' => 3]),
        'redirects_keyed_by_url' => fn ($u) => ["$u/old-page/" => "$u/new-page/", '/relative/' => "$u/x"],
        'json_decoded_object' => fn ($u) => json_decode(json_encode(["$u/a" => 1, 'b' => "$u/b"])),
        'protocol_relative' => fn ($u) => [
            'logo' => relative($u) . '/logo.png',
            'css' => '<link rel="stylesheet" href="' . relative($u) . '/style.css">',
        ],
        'login_redirect' => fn ($u) => "$u/wp-login.php?redirect_to=" . urlencode("$u/wp-admin/") . '&reauth=1',
        'numbers' => fn ($u) => ['ratio' => 0.1, 'big' => 1e25, 'tiny' => 1.5e-7, 'neg' => -0.0, 'inf' => INF, 'min' => PHP_INT_MIN, 'site' => $u],
    ];
}

$mode = $argv[1];
if ($mode === 'emit') {
    foreach (cases() as $name => $f) {
        echo $name, ' ', base64_encode(maybe_serialize($f($argv[2]))), ' ', base64_encode(maybe_serialize($f($argv[3]))), "\n";
    }
} else {
    $cases = cases();
    while (($line = fgets(STDIN)) !== false) {
        [$name, $got] = explode(' ', rtrim($line, "\n"));
        $got = base64_decode($got);
        $want = $cases[$name]($argv[2]);
        if (is_string($want) && $want === maybe_serialize($want)) {
            echo $got === $want ? "ok\n" : "FAIL $name: " . json_encode($got, JSON_INVALID_UTF8_SUBSTITUTE) . "\n";
            continue;
        }
        $value = @unserialize($got);
        if ($value === false) {
            echo "FAIL $name: unserialize() refused ", json_encode($got, JSON_INVALID_UTF8_SUBSTITUTE), "\n";
        } elseif (serialize($value) !== $got) {
            echo "FAIL $name: does not serialize back to itself\n";
        } elseif (var_export($value, true) !== var_export($want, true)) {
            echo "FAIL $name: ", var_export($value, true), "\n";
        } else {
            echo "ok\n";
        }
    }
}
