<?php
// Judges rewritten values by PHP itself. Reads lines "ORIGINAL REWRITTEN MAP", each field
// base64; MAP is a serialized array of from => to strings. The expected value is the
// unserialized ORIGINAL with strtr(MAP) (longest key first, one pass) applied to every
// string and array key, inside nested serializations too; class names and property names
// of declared classes are identifiers and stay. Prints "ok" or "FAIL n: why" per line.

// generate.php writes Hearts and Spades, testgen.rs C0 to C255.
eval('enum Suit { case Hearts; case Spades; '
    . implode(' ', array_map(fn ($i) => "case C$i;", range(0, 255))) . ' }');

class Legacy implements Serializable
{
    public $d;

    public function serialize()
    {
        return serialize($this->d);
    }

    public function unserialize($s)
    {
        $this->d = unserialize($s);
    }
}

// The value, and whether $s is exactly its serialization.
function exact(string $s, ?bool &$ok)
{
    $v = @unserialize($s);
    $ok = ($v !== false || $s === 'b:0;') && serialize($v) === $s;
    return $v;
}

// A comparable picture: objects become arrays naming their class, strings that hold a
// serialization become the picture of what they hold.
function norm($v)
{
    if (is_string($v)) {
        $inner = exact($v, $ok);
        return $ok ? ['__serialized' => norm($inner)] : $v;
    }
    if (is_array($v)) {
        $out = [];
        foreach ($v as $k => $x) {
            $out[$k] = norm($x);
        }
        return $out;
    }
    if ($v instanceof Legacy) {
        return ['__legacy' => norm($v->d)];
    }
    if ($v instanceof UnitEnum) {
        return ['__enum' => get_class($v) . ':' . $v->name];
    }
    if (is_object($v)) {
        $out = ['__class' => get_class($v)];
        foreach ((array) $v as $k => $x) {
            $out["p:$k"] = norm($x);
        }
        return $out;
    }
    return $v;
}

function rr($v, array $map)
{
    if (is_string($v)) {
        return strtr($v, $map);
    }
    if (is_array($v)) {
        $out = [];
        foreach ($v as $k => $x) {
            $out[is_string($k) ? strtr($k, $map) : $k] = rr($x, $map);
        }
        return $out;
    }
    return $v;
}

$n = 0;
while (($line = fgets(STDIN)) !== false) {
    $n++;
    [$orig, $new, $map] = array_map('base64_decode', explode(' ', rtrim($line, "\n")));
    $map = unserialize($map);
    $a = exact($orig, $ok_a);
    $b = exact($new, $ok_b);
    if (!$ok_a) {
        echo "FAIL $n: PHP does not read the original back identically: ", json_encode($orig, JSON_INVALID_UTF8_SUBSTITUTE), "\n";
    } elseif (!$ok_b) {
        echo "FAIL $n: PHP does not read the rewritten value back identically: ", json_encode($new, JSON_INVALID_UTF8_SUBSTITUTE), "\n";
    } else {
        $want = serialize(rr(norm($a), $map));
        $got = serialize(norm($b));
        echo $want === $got ? "ok\n" : "FAIL $n: want " . json_encode($want, JSON_INVALID_UTF8_SUBSTITUTE) . ' got ' . json_encode($got, JSON_INVALID_UTF8_SUBSTITUTE) . "\n";
    }
}
