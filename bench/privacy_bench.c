/* The Privacy Gate's cost per request: dagi_privacy_gate_messages in
 * confidential mode without consent (redact, split, score, pick, build
 * the new array) on a 4 KB conversation, against a baseline measured in
 * the same run - a jansson deep copy of the same messages, what any
 * transforming step would at least pay.  The conversation mixes English and
 * Ukrainian prose with e-mails, phones, a card, an IBAN, URLs and a key.
 * The open modes (the array passed through) are timed too.
 *
 * Each call is timed alone (clock_gettime around it); p50 and p99 over
 * `requests`, median of `runs`.  Target: the gate adds at most 50 us p99.
 *
 *   privacy_bench [requests [runs]]   (20000 5) */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "privacy/privacy.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(int64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), cmp_i64);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

static double median(double *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

static const char *const turns[][2] = {
    {"user",
     "Hi! Our microDAO energy cooperative in Lviv plans to install 40 kW of solar panels on "
     "the school roof by June. The city grant covers 60% of the cost, about 1.2 million "
     "UAH. Dr. Kovalenko will present the budget on Friday."},
    {"assistant", "A 40 kW array on a school roof is a good size. Before the installation you "
                  "need a structural survey of the roof, a grid connection permit from the "
                  "distribution operator and a maintenance plan. Do you have the survey yet?"},
    {"user", "Мене звуть Олена, я координаторка проєкту. Пишіть на olena.k@example.com або "
             "дзвоніть +380 67 123 45 67. Обстеження даху коштує 20 000 грн, оплата на рахунок "
             "UA21 3223 1300 0002 6007 2335 6600 1."},
    {"assistant", "Дякую, Олено. Обстеження варто замовити якнайшвидше: постачальник інверторів "
                  "дає десятирічну гарантію, але доставка триває вісім тижнів. Батареї додають "
                  "приблизно 25% до бюджету."},
    {"user",
     "The supplier sent an invoice link https://pay.example.com/inv/8812?token=Xk9fQ2mZp7LwR4t "
     "and asked for a deposit by card 4111 1111 1111 1111. Is that safe? Our treasurer "
     "prefers bank transfers for anything over 10 000 UAH."},
    {"assistant", "Paying by bank transfer is safer for large amounts, and an invoice link that "
                  "carries a token should not be shared further. Ask the supplier for a formal "
                  "invoice with their IBAN and the cooperative's details."},
    {"user", "Our developer put the monitoring API key sk-proj-abcdefghijklmnopqrstu12345 into the "
             "chat by mistake, and the dashboard runs at 192.168.10.20:3000. We will rotate the "
             "key tomorrow. The dashboard shows 38.6 kWh produced on the first sunny day."},
    {"assistant", "Rotate the key today if you can, and keep the dashboard off the public "
                  "network. 38.6 kWh on one day matches what a 40 kW array gives in early spring."},
    {"user", "Громада питає, чи можна продавати надлишок енергії мережі за зеленим тарифом, і хто "
             "має підписувати договір: кооператив чи школа? Юрист радить кооператив, т.д."},
    {"assistant", "Договір краще підписувати кооперативу як власнику станції; школа надає дах в "
                  "оренду. Зелений тариф для нових станцій замінено аукціонами, тож перевірте "
                  "поточні правила в НКРЕКП."},
    {"user", "The distribution operator says the grid permit takes 30 days after a complete "
             "application. They need the single-line diagram, the inverter certificates and a "
             "signed letter from the school director. Ivan Petrenko (ivan.p@school12.lviv.ua) "
             "prepares the diagram."},
    {"assistant", "Thirty days is typical. Send the application as soon as the diagram is ready; "
                  "the inverter certificates come from the supplier, so ask for them now. The "
                  "letter from the director can follow within the same week."},
    {"user", "Бухгалтерка нагадує: рахунок постачальника треба оплатити до 25 числа, інакше "
             "ціна зросте на 7%. Її телефон 050 765 43 21, вона працює з понеділка по четвер."},
    {"assistant", "Якщо оплата до 25 числа фіксує ціну, варто встигнути: 7% від вартості "
                  "інверторів більше, ніж коштує термінове обстеження даху."},
    {"user", "One more thing: the old monitoring server at 10.0.0.17 still runs with the default "
             "password: admin12345, and the school IT teacher wants to reuse it for the "
             "dashboard."},
    {"assistant", "Change that password before anything else and keep the old server off the "
                  "school network. A new monitoring box costs less than a day of lost production, "
                  "and the dashboard can run next to the inverter gateway."},
    {"user", "So what should we do first this week: the roof survey, the grid permit or the "
             "battery decision? We meet on Friday at 18:00 in room 204."},
};

static json_t *conversation(size_t *bytes)
{
    json_t *m = json_array();
    json_array_append_new(m, json_pack("{s:s,s:s}", "role", "system", "content",
                                       "You are Helion, the Energy Union's guide. Answer briefly "
                                       "and practically."));
    *bytes = 0;
    for (size_t k = 0; k < sizeof(turns) / sizeof(turns[0]); k++) {
        json_array_append_new(m,
                              json_pack("{s:s,s:s}", "role", turns[k][0], "content", turns[k][1]));
        *bytes += strlen(turns[k][1]);
    }
    return m;
}

int main(int argc, char **argv)
{
    size_t requests = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000;
    size_t runs = argc > 2 ? strtoul(argv[2], NULL, 10) : 5;
    if (runs > 16)
        runs = 16;
    size_t bytes;
    json_t *m = conversation(&bytes);
    int64_t *gate = malloc(requests * sizeof(*gate));
    int64_t *copy = malloc(requests * sizeof(*copy));
    int64_t *open = malloc(requests * sizeof(*open));
    double g50[16], g99[16], c50[16], c99[16], o99[16], added99[16];
    struct dagi_privacy_report r = {0};
    for (size_t run = 0; run < runs; run++) {
        for (size_t i = 0; i < requests; i++) {
            json_t *out = NULL;
            int64_t t0 = now_ns();
            dagi_privacy_gate_messages(m, DAGI_PRIVACY_CONFIDENTIAL, false, 100, &out, &r, NULL);
            int64_t t1 = now_ns();
            json_decref(out);
            int64_t t2 = now_ns();
            json_t *dup = json_deep_copy(m);
            int64_t t3 = now_ns();
            json_decref(dup);
            int64_t t4 = now_ns();
            dagi_privacy_gate_messages(m, DAGI_PRIVACY_PUBLIC, false, 100, &out, NULL, NULL);
            int64_t t5 = now_ns();
            json_decref(out);
            gate[i] = t1 - t0;
            copy[i] = t3 - t2;
            open[i] = t5 - t4;
        }
        g50[run] = pct(gate, requests, 0.50);
        g99[run] = pct(gate, requests, 0.99);
        c50[run] = pct(copy, requests, 0.50);
        c99[run] = pct(copy, requests, 0.99);
        o99[run] = pct(open, requests, 0.99);
        added99[run] = g99[run] - c99[run];
        printf("run %zu: gate p50 %.2f us, p99 %.2f us; deep copy (baseline) p50 %.2f us, p99 "
               "%.2f us; open modes p99 %.2f us; ratio p99 %.1fx\n",
               run + 1, g50[run], g99[run], c50[run], c99[run], o99[run], g99[run] / c99[run]);
    }
    printf("context: %zu bytes of text in %zu messages; summary %u tokens from %zu of %zu "
           "sentences, %u findings redacted\n",
           bytes, json_array_size(m), r.tokens_out, r.sentences_kept, r.sentences_in,
           dagi_pii_counts_total(&r.redacted));
    double added = median(added99, runs);
    printf("median of %zu runs: gate p50 %.2f us, p99 %.2f us; baseline p50 %.2f us, p99 %.2f "
           "us; open modes p99 %.2f us; the gate adds %.2f us p99 over the baseline (target "
           "<= 50 us): %s\n",
           runs, median(g50, runs), median(g99, runs), median(c50, runs), median(c99, runs),
           median(o99, runs), added, added <= 50.0 ? "PASS" : "FAIL");
    free(gate);
    free(copy);
    free(open);
    json_decref(m);
    return 0; /* a verdict to read, not an exit status: bench/run.sh goes on */
}
