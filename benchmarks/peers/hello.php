<?php
// The php-fpm peer (a static pool, run by benchmarks/peers.py): the benchmark's cases, answered
// as Forklift's plugins and benchmarks/peers/hello.c answer them.
//   /hello             "Hello, world!\n"
//   /echo...           Plugins/Echo's format: method, path, pid, every param, body-length, the body
//   .../sleep?ms=N     one usleep of N ms, then "slept M ms\n", 64 KiB of 'z' and "\nend\n"
// The path is routed as Forklift routes it: DOCUMENT_URI, else SCRIPT_NAME + PATH_INFO, else REQUEST_URI.
header('Content-Type: text/plain; charset=utf-8');
$path = $_SERVER['DOCUMENT_URI'] ?? '';
if ($path === '') {
    $path = isset($_SERVER['SCRIPT_NAME']) && $_SERVER['SCRIPT_NAME'] !== ''
        ? $_SERVER['SCRIPT_NAME'] . ($_SERVER['PATH_INFO'] ?? '')
        : strtok($_SERVER['REQUEST_URI'] ?? '', '?');
}
$segment = fn($prefix) => $path === $prefix || str_starts_with($path, $prefix . '/');
if ($segment('/hello')) {
    echo "Hello, world!\n";
} elseif ($segment('/echo')) {
    $body = file_get_contents('php://input');
    $head = "method: {$_SERVER['REQUEST_METHOD']}\npath: $path\npid: " . getmypid() . "\n";
    foreach ($_SERVER as $name => $value) {
        if (is_string($value)) $head .= "param: $name=$value\n";
    }
    echo $head, "body-length: ", strlen($body), "\n\n", $body;
} elseif (basename($path) === 'sleep') {
    $query = $_SERVER['QUERY_STRING'] ?? '';
    $ms = (int)substr($query, strrpos($query, '=') === false ? strlen($query) : strrpos($query, '=') + 1);
    $start = hrtime(true);
    usleep($ms * 1000);
    $slept = intdiv(hrtime(true) - $start, 1000000);
    echo "slept $slept ms\n", str_repeat('z', 65536), "\nend\n";
} else {
    http_response_code(404);
    echo "no route for $path\n";
}
