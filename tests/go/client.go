// A stock Go net/http client (default transport, or a custom http.Transport) streaming a chat
// completion from the provider's default URL (or $URL); one line per received SSE line, with
// the milliseconds since the answer's head. usage: client REQUEST.json [default|custom] [N]
package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	body, _ := os.ReadFile(os.Args[1])
	client := http.DefaultClient
	if len(os.Args) > 2 && os.Args[2] == "custom" {
		client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConns: 4, IdleConnTimeout: 30 * time.Second}}
	}
	url := "https://api.openai.com/v1/chat/completions"
	if u := os.Getenv("URL"); u != "" {
		url = u
	}
	n := 1
	if len(os.Args) > 3 {
		fmt.Sscan(os.Args[3], &n)
	}
	t0 := time.Now()
	for i := 1; i < n; i++ { // keep-alive: the same connection, again and again (bench)
		req, _ := http.NewRequest("POST", url, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if n > 1 {
		fmt.Fprintf(os.Stderr, "per_request_us %.1f\n", float64(time.Since(t0).Microseconds())/float64(n-1))
	}
	req, _ := http.NewRequest("POST", url, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer sk-test")
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	fmt.Printf("status %d\n", resp.StatusCode)
	start := time.Now()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			fmt.Printf("%.1f %s\n", float64(time.Since(start).Microseconds())/1000, line)
		}
	}
}
