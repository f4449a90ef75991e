# One streamed POST through Ruby's Net::HTTP (use_ssl, the system OpenSSL, certificates verified);
# prints what arrived as JSON (as py_client.py). usage: ruby ruby_client.rb URL BODY
require "net/http"
require "json"
require "base64"
uri = URI(ARGV[0])
chunks, times = [], []
t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
status, ctype = 0, ""
Net::HTTP.start(uri.host, uri.port, use_ssl: uri.scheme == "https") do |http|
  req = Net::HTTP::Post.new(uri, "Content-Type" => "application/json", "Authorization" => "Bearer sk-test")
  req.body = ARGV[1]
  http.request(req) do |res|
    status, ctype = res.code.to_i, res["content-type"].to_s
    res.read_body do |c|
      chunks << c
      times << Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
puts JSON.generate(status: status, ctype: ctype, body: Base64.strict_encode64(chunks.join),
                   reads: chunks.size, t_first: times.empty? ? 0 : times[0] - t0, t_last: times.empty? ? 0 : times[-1] - t0)
