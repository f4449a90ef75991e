<?php
// One streamed POST through a stock PHP client; prints what arrived as JSON (as py_client.py).
// usage: php php_client.php curl|guzzle_stream|guzzle|guzzle_async URL BODY
// curl: ext/curl with a CURLOPT_WRITEFUNCTION callback; guzzle_stream: Guzzle with
// 'stream' => true (PHP's stream wrapper, PHP's OpenSSL); guzzle: Guzzle's default (ext/curl's
// curl_exec); guzzle_async: postAsync (ext/curl's curl_multi_*).
[$_, $mode, $url, $body] = $argv;
$chunks = []; $times = []; $t0 = microtime(true); $status = 0; $ctype = "";
$take = function ($data) use (&$chunks, &$times) { $chunks[] = $data; $times[] = microtime(true); };
if ($mode === "curl") {
    $ch = curl_init($url);
    curl_setopt_array($ch, [CURLOPT_POST => true, CURLOPT_POSTFIELDS => $body,
        CURLOPT_HTTPHEADER => ["Content-Type: application/json", "Authorization: Bearer sk-test"],
        CURLOPT_WRITEFUNCTION => function ($ch, $data) use ($take) { $take($data); return strlen($data); }]);
    if (curl_exec($ch) === false) { fwrite(STDERR, "curl error: " . curl_error($ch) . "\n"); exit(1); }
    $status = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
    $ctype = curl_getinfo($ch, CURLINFO_CONTENT_TYPE);
} else {
    require_once "/usr/share/php/GuzzleHttp/autoload.php";
    $client = new GuzzleHttp\Client(["http_errors" => false]);
    $opts = ["headers" => ["Content-Type" => "application/json", "Authorization" => "Bearer sk-test"],
        "body" => $body, "stream" => $mode === "guzzle_stream"];
    $r = $mode === "guzzle_async" ? $client->postAsync($url, $opts)->wait() : $client->post($url, $opts);
    $status = $r->getStatusCode();
    $ctype = $r->getHeaderLine("Content-Type");
    $s = $r->getBody();
    while (!$s->eof()) { $d = $s->read(8192); if ($d !== "") $take($d); }
}
echo json_encode(["status" => $status, "ctype" => $ctype, "body" => base64_encode(implode("", $chunks)),
    "reads" => count($chunks), "t_first" => $times ? $times[0] - $t0 : 0, "t_last" => $times ? end($times) - $t0 : 0]), "\n";
