/* Java's trust under `llmreplay run` (CLI only). */
#ifndef LR_JAVA_TRUST_H
#define LR_JAVA_TRUST_H
/* When a JDK is found (JAVA_HOME, or `java` on PATH): dir/java-trust-HASH.p12 = the JDK's cacerts,
 * or the trustStore already named in JAVA_TOOL_OPTIONS, plus ca (made with keytool when older
 * than either), and JAVA_TOOL_OPTIONS names it. Warns on stderr when it cannot. */
void lr_java_trust(const char *dir, const char *ca);
#endif
