<?php
// Usage: php generate.php SEED COUNT FROM TO
// Prints one line with the base64 serialization of the from => to map of every URL form
// (for oracle.php), then COUNT lines, each the base64 serialization of a random value
// shaped like WordPress data, with FROM's URLs in its strings. Classes declared here
// (Acme_Widget) are unknown to oracle.php.

enum Suit
{
    case Hearts;
    case Spades;
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

class Acme_Widget
{
    private $url;
    protected $items;
    public $title;

    public function __construct($url, $items, $title)
    {
        $this->url = $url;
        $this->items = $items;
        $this->title = $title;
    }
}

[, $seed, $count, $from, $to] = $argv;
mt_srand((int) $seed);

function pick(array $a)
{
    return $a[mt_rand(0, count($a) - 1)];
}

function json_form(string $u): string
{
    return str_replace('/', '\/', $u);
}

function relative(string $u): string
{
    return preg_replace('#^https?:#i', '', $u);
}

// [from, to, suffixes that end a URL in this form]
$plain = ['', '/', '/wp-content/uploads/2024/01/a.jpg', '?p=1', '#top'];
$forms = [
    [$from, $to, $plain],
    [json_form($from), json_form($to), ['', '\/', '\/wp-json\/v2']],
    [rawurlencode($from), rawurlencode($to), ['', '%2F', '%2Fwp-admin%2F']],
];
if (preg_match('#^https?://#i', $from)) {
    $forms[] = [relative($from), relative($to), $plain];
    $forms[] = [json_form(relative($from)), json_form(relative($to)), ['', '\/']];
    $forms[] = [rawurlencode(relative($from)), rawurlencode(relative($to)), ['%2F']];
}
$near = [$from . '2', $from . '.evil.example', $from . '-x', rawurlencode($from . '9')];

$map = [];
foreach ($forms as [$f, $t]) {
    $map[$f] = $t;
}
foreach ($near as $n) {
    $map[$n] = $n;
}
echo base64_encode(serialize($map)), "\n";

function url_text(): string
{
    global $forms, $near;
    if (mt_rand(0, 5) === 0) {
        return pick($near) . pick(['', ' is another site']);
    }
    [$f, , $suffixes] = pick($forms);
    return pick(['', 'See ', '<a href="', '日本語 ']) . $f . pick($suffixes)
        . pick(['', '" class="x">link</a>', ' and more', '.']);
}

function text(): string
{
    switch (mt_rand(0, 5)) {
        case 0:
            $s = '';
            for ($i = mt_rand(0, 12); $i > 0; $i--) {
                $s .= chr(mt_rand(0, 255));
            }
            return $s;
        case 1:
            return pick(['', 'Café Zürich', 'Ελληνικά', '日本語のテキスト', 'emoji 😀👍', "quote \" semicolon ; brace }"]);
        case 2:
            return pick(['title', 'siteurl', 'home', '_multiwidget', 'nav_menu_locations', 'widget_text']);
        default:
            return url_text();
    }
}

function value(int $depth)
{
    switch (mt_rand(0, $depth > 3 ? 8 : 17)) {
        case 0:
            return null;
        case 1:
            return (bool) mt_rand(0, 1);
        case 2:
            return pick([0, -1, 7, PHP_INT_MAX, PHP_INT_MIN, mt_rand(), -mt_rand()]);
        case 3:
            return pick([0.1, -0.0, 0.0, 1.5, INF, -INF, NAN, 1e25, 1.5e-7, 0.30000000000000004,
                mt_rand() / mt_getrandmax(), mt_rand() * 1e10, -mt_rand() / 1e9]);
        case 4:
        case 5:
        case 6:
            return text();
        case 7:
            return pick([Suit::Hearts, Suit::Spades]);
        case 8:
            return url_text();
        case 9:
            // a double-serialized string
            return serialize(value($depth + 1));
        case 10:
            return new Legacy(value($depth + 1));
        case 11:
        case 12:
            $a = [];
            for ($i = mt_rand(0, 4); $i > 0; $i--) {
                $a[] = value($depth + 1);
            }
            return $a;
        case 13:
            $a = [];
            for ($i = mt_rand(0, 4); $i > 0; $i--) {
                $a[pick([text(), url_text(), mt_rand(-5, 5)])] = value($depth + 1);
            }
            return $a;
        case 14:
            $o = new stdClass();
            for ($i = mt_rand(0, 3); $i > 0; $i--) {
                $o->{pick(['url', 'title', url_text()])} = value($depth + 1);
            }
            return $o;
        case 15:
            return new Acme_Widget(url_text(), [value($depth + 1)], text());
        case 16:
            // a PHP reference (R:) and the same object twice (r:)
            $a = [value($depth + 1), url_text()];
            $a[] = &$a[1];
            $o = new stdClass();
            $o->link = url_text();
            $a[] = $o;
            $a[] = $o;
            return $a;
        default:
            return new ArrayObject([url_text(), 'k' => value($depth + 1)]);
    }
}

for ($i = 0; $i < (int) $count; $i++) {
    echo base64_encode(serialize(value(0))), "\n";
}
