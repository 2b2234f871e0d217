// An HEH on the official RabbitMQ Java client, written as docs/partners.md says: TLS with the
// bus CA and the HEH's certificate (PKCS#12), SASL EXTERNAL, the client's automatic recovery,
// persistent messages with publisher confirms, and a buffer of its own so that nothing it sends
// is lost while the bus is away. Debian: librabbitmq-client-java, libjackson2-databind-java and
// default-jdk-headless.
//
// It reads what the conformance kit gives it (EBADGE_HOST, EBADGE_PORT, EBADGE_CA,
// EBADGE_PKCS12, EBADGE_PKCS12_PASSWORD, EBADGE_NAME, EBADGE_CONTROLLER) and answers
// get_status_report, get_report, activate (it accepts) and get_periodic_report:
//
//   CP=/usr/share/java/amqp-client.jar:/usr/share/java/slf4j-api.jar:/usr/share/java/jackson-databind.jar:/usr/share/java/jackson-core.jar:/usr/share/java/jackson-annotations.jar
//   javac -cp $CP -d /tmp/heh docs/partners/java/EbadgeHeh.java
//   ebadge conformance heh --command "java -cp $CP:/tmp/heh EbadgeHeh"

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.DefaultSaslConfig;
import com.rabbitmq.client.Envelope;
import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.temporal.ChronoUnit;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingDeque;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class EbadgeHeh {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String NAME = System.getenv("EBADGE_NAME");
    static final String CONTROLLER = System.getenv("EBADGE_CONTROLLER");
    static final String EXCHANGE = NAME + "-to-" + CONTROLLER; // D3.2.3 5.3.1: one exchange per ordered pair
    static final String INBOX = "private-" + NAME + "-inbox";

    /** Sent while the bus is away too: kept until the broker confirms. */
    static final LinkedBlockingDeque<ObjectNode> outgoing = new LinkedBlockingDeque<>(100_000);
    /** Message ids seen lately: a redelivered message is answered once. */
    static final Map<String, Boolean> seen = new LinkedHashMap<>(1000, 0.75f, false) {
        protected boolean removeEldestEntry(Map.Entry<String, Boolean> eldest) {
            return size() > 1000;
        }
    };
    static final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
    static ScheduledFuture<?> periodic;

    /** ISO 8601 with an offset and always the seconds (D3.1.3 4.2.4); toString() drops ":00". */
    static String stamp(OffsetDateTime t) {
        return DateTimeFormatter.ISO_OFFSET_DATE_TIME.format(t.truncatedTo(ChronoUnit.SECONDS));
    }

    static OffsetDateTime now() {
        return OffsetDateTime.now(ZoneOffset.UTC);
    }

    static ObjectNode report(String from, String to, double resolution, JsonNode signals) {
        long seconds = Duration.between(OffsetDateTime.parse(from), OffsetDateTime.parse(to)).getSeconds();
        int count = (int) Math.ceil(seconds / resolution);
        ObjectNode report = JSON.createObjectNode().put("msg", "report").put("from", from).put("to", to)
                .put("resolution", resolution);
        ObjectNode values = report.putObject("values");
        for (JsonNode signal : signals) {
            values.putArray(signal.asText()).addAll(java.util.Collections.nCopies(count, JSON.valueToTree(0.5)));
        }
        report.putNull("heh_id");
        return report;
    }

    static void handle(JsonNode m) {
        switch (m.path("msg").asText()) {
            case "get_status_report" -> outgoing.offer(JSON.createObjectNode().put("msg", "status_report")
                    .put("status", "OK").put("clock", stamp(now())).set("events", JSON.createArrayNode()));
            case "get_report" -> outgoing.offer(report(m.get("from").asText(), m.get("to").asText(),
                    m.get("resolution").asDouble(), m.get("signals")));
            case "activate" -> outgoing.offer(JSON.createObjectNode().put("msg", "accept_activation")
                    .put("id", m.get("id").asText()).put("modification_count", m.get("modification_count").asLong()));
            case "get_periodic_report" -> {
                if (periodic != null) periodic.cancel(false);
                double interval = m.get("interval").asDouble();
                if (interval != -1) {
                    long every = (long) (interval * 1000);
                    double resolution = m.get("resolution").asDouble();
                    JsonNode signals = m.get("signals");
                    periodic = timer.scheduleAtFixedRate(() -> {
                        OffsetDateTime end = now();
                        outgoing.offer(report(stamp(end.minusNanos(every * 1_000_000)), stamp(end), resolution, signals));
                    }, every, every, TimeUnit.MILLISECONDS);
                }
            }
            default -> { }
        }
    }

    static SSLContext tls() throws Exception {
        char[] password = System.getenv("EBADGE_PKCS12_PASSWORD").toCharArray();
        KeyStore mine = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(System.getenv("EBADGE_PKCS12"))) {
            mine.load(in, password);
        }
        KeyManagerFactory keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keys.init(mine, password);
        KeyStore trusted = KeyStore.getInstance(KeyStore.getDefaultType());
        trusted.load(null, null);
        try (InputStream in = new FileInputStream(System.getenv("EBADGE_CA"))) {
            Certificate ca = CertificateFactory.getInstance("X.509").generateCertificate(in);
            trusted.setCertificateEntry("ebadge-ca", ca); // only the bus CA, not the system's
        }
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(trusted);
        SSLContext context = SSLContext.getInstance("TLSv1.2");
        context.init(keys.getKeyManagers(), trust.getTrustManagers(), null);
        return context;
    }

    public static void main(String[] args) throws Exception {
        ConnectionFactory factory = new ConnectionFactory();
        factory.setHost(System.getenv("EBADGE_HOST"));
        factory.setPort(Integer.parseInt(System.getenv("EBADGE_PORT")));
        factory.useSslProtocol(tls());
        factory.setSaslConfig(DefaultSaslConfig.EXTERNAL); // the certificate is the login
        factory.setRequestedHeartbeat(10);
        factory.setAutomaticRecoveryEnabled(true); // reconnects, reopens channels and consumers
        factory.setNetworkRecoveryInterval(1000);

        Connection connection = null;
        while (connection == null) { // the first connection is not recovered automatically
            try {
                connection = factory.newConnection(NAME);
            } catch (java.io.IOException | java.util.concurrent.TimeoutException e) {
                System.out.println(NAME + ": no broker yet (" + e + ")");
                Thread.sleep(1000);
            }
        }
        Channel consume = connection.createChannel();
        consume.basicQos(16);
        consume.basicConsume(INBOX, false, new DefaultConsumer(consume) {
            @Override
            public void handleDelivery(String tag, Envelope envelope, AMQP.BasicProperties props, byte[] body)
                    throws java.io.IOException {
                String id = props.getMessageId();
                boolean fresh;
                synchronized (seen) {
                    fresh = id == null || seen.put(id, true) == null;
                }
                if (fresh) {
                    try {
                        handle(JSON.readTree(body));
                    } catch (java.io.IOException | RuntimeException e) {
                        System.out.println(NAME + ": ignoring an invalid message: " + e);
                    }
                }
                getChannel().basicAck(envelope.getDeliveryTag(), false);
            }
        });
        System.out.println(NAME + ": connected");

        Channel publish = connection.createChannel();
        publish.confirmSelect();
        while (true) {
            ObjectNode message = outgoing.take();
            String key = message.get("msg").asText(); // routing key type[.heh_id]: an HEH's own messages have none
            AMQP.BasicProperties props = new AMQP.BasicProperties.Builder().deliveryMode(2)
                    .messageId(UUID.randomUUID().toString()).contentType("application/json").build();
            while (true) {
                try {
                    publish.basicPublish(EXCHANGE, key, props, JSON.writeValueAsBytes(message));
                    publish.waitForConfirmsOrDie(5000);
                    break;
                } catch (Exception e) { // the link is down: keep it, try again once recovered
                    Thread.sleep(500);
                }
            }
        }
    }
}
