// One streamed POST through the JDK's own HTTP clients (their TLS and trust store); prints what
// arrived as JSON (as py_client.py). usage: java JavaClient.java httpclient|urlconnection URL BODY
// httpclient: java.net.http.HttpClient with BodyHandlers.ofLines(); urlconnection: HttpsURLConnection.
import java.io.*;
import java.net.*;
import java.net.http.*;
import java.nio.charset.StandardCharsets;
import java.util.*;

public class JavaClient {
    static final List<byte[]> chunks = new ArrayList<>();
    static final List<Long> times = new ArrayList<>();

    static void take(byte[] b) { chunks.add(b); times.add(System.nanoTime()); }

    public static void main(String[] a) throws Exception {
        long t0 = System.nanoTime();
        int status;
        String ctype;
        if (a[0].equals("httpclient")) {
            HttpClient c = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
            HttpRequest r = HttpRequest.newBuilder(URI.create(a[1])).header("Content-Type", "application/json")
                .header("Authorization", "Bearer sk-test").POST(HttpRequest.BodyPublishers.ofString(a[2])).build();
            HttpResponse<java.util.stream.Stream<String>> res = c.send(r, HttpResponse.BodyHandlers.ofLines());
            status = res.statusCode();
            ctype = res.headers().firstValue("content-type").orElse("");
            res.body().forEach(l -> take((l + "\n").getBytes(StandardCharsets.UTF_8)));
        } else {
            HttpURLConnection c = (HttpURLConnection) new URL(a[1]).openConnection();
            c.setRequestMethod("POST");
            c.setDoOutput(true);
            c.setRequestProperty("Content-Type", "application/json");
            c.setRequestProperty("Authorization", "Bearer sk-test");
            try (OutputStream o = c.getOutputStream()) { o.write(a[2].getBytes(StandardCharsets.UTF_8)); }
            status = c.getResponseCode();
            ctype = c.getContentType();
            InputStream in = c.getInputStream();
            byte[] buf = new byte[8192];
            for (int n; (n = in.read(buf)) > 0;) take(Arrays.copyOf(buf, n));
        }
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        for (byte[] b : chunks) all.write(b);
        double first = times.isEmpty() ? 0 : (times.get(0) - t0) / 1e9, last = times.isEmpty() ? 0 : (times.get(times.size() - 1) - t0) / 1e9;
        System.out.println("{\"status\": " + status + ", \"ctype\": \"" + ctype + "\", \"body\": \""
            + Base64.getEncoder().encodeToString(all.toByteArray()) + "\", \"reads\": " + chunks.size()
            + ", \"t_first\": " + first + ", \"t_last\": " + last + "}");
    }
}
