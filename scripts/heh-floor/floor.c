/* The floor of an HEH's per-message cost on this machine: the same system calls as the agent
   (a line from the device's pipe, one 317-byte write to a TCP peer, its 43-byte answer), no TLS,
   no AMQP, no JSON. Usage: device | floor PORT */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    char line[8192], frame[317], answer[43];
    memset(frame, 'x', sizeof frame);
    while (fgets(line, sizeof line, stdin)) {
        if (write(s, frame, sizeof frame) != sizeof frame) return 1;
        size_t got = 0;
        while (got < sizeof answer) { ssize_t n = read(s, answer + got, sizeof answer - got); if (n <= 0) return 1; got += n; }
    }
    return 0;
}
