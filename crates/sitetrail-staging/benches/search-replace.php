<?php
// The baseline's search-replace, as WordPress tooling does it (WP-CLI's approach): every text
// column of every table, values unserialized and rewritten recursively, serialized again.
// Usage: php search-replace.php HOST PORT USER PASSWORD DB FROM TO
[$_, $host, $port, $user, $pass, $db, $from, $to] = $argv;
$m = new mysqli($host, $user, $pass, $db, (int) $port);
$m->set_charset('utf8mb4');

function replace_deep($data, $from, $to) {
    if (is_string($data)) {
        $u = @unserialize($data);
        if ($u !== false || $data === 'b:0;') {
            return serialize(replace_deep($u, $from, $to));
        }
        return str_replace($from, $to, $data);
    }
    if (is_array($data)) {
        $out = [];
        foreach ($data as $k => $v) {
            $out[$k] = replace_deep($v, $from, $to);
        }
        return $out;
    }
    if (is_object($data) && !($data instanceof __PHP_Incomplete_Class)) {
        foreach (get_object_vars($data) as $k => $v) {
            $data->$k = replace_deep($v, $from, $to);
        }
    }
    return $data;
}

$changed = 0;
foreach ($m->query('SHOW TABLES')->fetch_all() as [$table]) {
    $cols = $m->query("SHOW COLUMNS FROM `$table`")->fetch_all(MYSQLI_ASSOC);
    $pk = array_values(array_filter($cols, fn($c) => $c['Key'] === 'PRI'));
    $text = array_values(array_filter($cols, fn($c) => preg_match('/char|text/i', $c['Type'])));
    if (!$pk || !$text) {
        continue;
    }
    $pk = $pk[0]['Field'];
    foreach ($text as $c) {
        $col = $c['Field'];
        $like = '%' . $m->real_escape_string($from) . '%';
        $rows = $m->query("SELECT `$pk`, `$col` FROM `$table` WHERE `$col` LIKE '$like'");
        $update = $m->prepare("UPDATE `$table` SET `$col` = ? WHERE `$pk` = ?");
        while ($row = $rows->fetch_row()) {
            $new = replace_deep($row[1], $from, $to);
            if ($new !== $row[1]) {
                $update->bind_param('ss', $new, $row[0]);
                $update->execute();
                $changed++;
            }
        }
    }
}
echo "$changed\n";
