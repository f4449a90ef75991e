#!/usr/bin/python3
"""libcurl loaded with RTLD_DEEPBIND by path (as PHP loads ext/curl's libcurl) and driven through
ctypes: its own getaddrinfo/connect/SSL_* calls must reach the socket and TLS layers.
usage: ctypes_deepbind.py URL BODY   (prints the body)"""
import ctypes, os, sys

curl = ctypes.CDLL("/lib/x86_64-linux-gnu/libcurl.so.4", mode=os.RTLD_DEEPBIND | os.RTLD_NOW)
curl.curl_easy_init.restype = ctypes.c_void_p
curl.curl_easy_setopt.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
curl.curl_easy_perform.argtypes = [ctypes.c_void_p]
curl.curl_slist_append.restype = ctypes.c_void_p
curl.curl_slist_append.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
curl.curl_easy_strerror.restype = ctypes.c_char_p
URL, POSTFIELDS, HTTPHEADER, WRITEFUNCTION = 10002, 10015, 10023, 20011
WRITE = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p)
chunks = []
on_data = WRITE(lambda p, size, n, _: chunks.append(ctypes.string_at(p, size * n)) or size * n)
url, body = sys.argv[1].encode(), sys.argv[2].encode()
h = curl.curl_easy_init()
headers = curl.curl_slist_append(None, b"Content-Type: application/json")
for opt, val in ((URL, ctypes.c_char_p(url)), (POSTFIELDS, ctypes.c_char_p(body)), (HTTPHEADER, ctypes.c_void_p(headers)),
                 (WRITEFUNCTION, ctypes.cast(on_data, ctypes.c_void_p))):
    curl.curl_easy_setopt(h, opt, val)
rc = curl.curl_easy_perform(h)
if rc:
    sys.exit("curl error: " + curl.curl_easy_strerror(rc).decode())
sys.stdout.buffer.write(b"".join(chunks))
