#!/usr/bin/env python3
"""Writes the sample exports of the local mesh (examples/mesh/*/exports/): deterministic, stdlib only.

- chu-lyon (a university hospital): stays as its 20-year-old PMSI tool exports them: Windows-1252,
  ';'-separated, CRLF, French headers with accents and a padded one, day-first dates, decimal
  commas, department codes with leading zeros and letters (01, 2A, 971), free-text comments some of
  them quoted with ';' or a line break inside. Three quarterly files; the third has rows dated
  31/06/2024 (June has 30 days), so it is rejected with located errors and lands in failed/.
- mutuelle-sud (an insurer): claims as a modern system exports them: UTF-8, ',' separated, LF, ISO
  dates, '.' decimals, provider FINESS ids with leading zeros, an 'NA' status that is a real value.

Run it to regenerate the files (they are committed; the demo does not regenerate them).
"""
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
REGIONS = {  # region code -> departments
    "84": ["01", "03", "07", "15", "26", "38", "42", "43", "63", "69", "73", "74"],
    "76": ["09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82"],
    "93": ["04", "05", "06", "13", "83", "84"],
    "94": ["2A", "2B"],
    "01": ["971"],
}
DIAG = ["I10", "E11.9", "J18.9", "S72.0", "I21.4", "N39.0", "K35.8", "C50.9", "F32.1", "O80"]
COMMENTS = ["", "", "", "Transfert depuis les urgences", "Sortie contre avis médical",
            "Réadmission; suivi cardiologique", "Patient \"très\" anxieux", "AME, prise en charge 100%",
            "Séjour en soins intensifs\r\npuis médecine", "Hospitalisation de jour"]
ACTS = ["YYYY010", "DEQP003", "HHFA001", "ZBQK002", "QZJA002", "NFKA008", "JQGA004"]


def csv_field(value: str, delim: str) -> str:
    if any(c in value for c in (delim, '"', "\r", "\n")):
        return '"' + value.replace('"', '""') + '"'
    return value


def stays(path: Path, rng: random.Random, first_id: int, months: list, n: int, bad_days=()):
    header = ["N° séjour", "N° patient", "Date naissance", "Sexe", "Date entrée", "Date sortie",
              " Département ", "Région", "Diagnostic principal", "Durée séjour", "Coût total",
              "Commentaire"]
    lines = [";".join(header)]
    for i in range(n):
        region = rng.choice(list(REGIONS))
        dep = rng.choice(REGIONS[region])
        month = rng.choice(months)
        day = rng.randint(1, 28)
        los = rng.choice([0, 0, 1, 2, 3, 5, 8, 13])
        out_day = min(day + los, 28)
        by, bm, bd = rng.randint(1931, 2023), rng.randint(1, 12), rng.randint(1, 28)
        cost = f"{rng.randint(300, 45000)},{rng.randint(0, 99):02d}"
        admission = f"{day:02d}/{month:02d}/2024"
        if i in bad_days:
            admission = "31/06/2024"
        row = [str(first_id + i), f"{rng.randint(10**11, 10**12 - 1)}", f"{bd:02d}/{bm:02d}/{by}",
               rng.choice("MF"), admission, f"{out_day:02d}/{month:02d}/2024", dep, region,
               rng.choice(DIAG), str(out_day - day), cost, rng.choice(COMMENTS)]
        lines.append(";".join(csv_field(v, ";") for v in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("windows-1252"))


def claims(path: Path, rng: random.Random, first_id: int, month: int, n: int):
    lines = ["claim_id,member_id,provider_finess,region_code,department_code,service_date,act_code,"
             "amount_billed,amount_reimbursed,status"]
    for i in range(n):
        region = rng.choice(list(REGIONS))
        dep = rng.choice(REGIONS[region])
        billed = rng.randint(2000, 250000) / 100
        reimb = round(billed * rng.choice([0.6, 0.7, 1.0]), 2)
        status = rng.choice(["PAID", "PAID", "PAID", "PENDING", "REJECTED", "NA"])
        lines.append(",".join([
            f"CLM{first_id + i:08d}", f"M{rng.randint(10**7, 10**8 - 1)}",
            f"{rng.randint(1, 99):02d}{rng.randint(0, 9999999):07d}", region, dep,
            f"2024-{month:02d}-{rng.randint(1, 28):02d}", rng.choice(ACTS),
            f"{billed:.2f}", f"{reimb:.2f}", status]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main():
    rng = random.Random(2024)
    exp = HERE / "chu-lyon" / "exports"
    stays(exp / "SEJOURS_2024_T1.csv", rng, 24_000_001, [1, 2, 3], 1200)
    stays(exp / "SEJOURS_2024_T2.csv", rng, 24_001_201, [4, 5, 6], 1100)
    stays(exp / "SEJOURS_2024_T3.csv", rng, 24_002_301, [7, 8, 9], 900, bad_days={17, 402})
    exp = HERE / "mutuelle-sud" / "exports"
    claims(exp / "remboursements_2024_01.csv", rng, 1, 1, 1500)
    claims(exp / "remboursements_2024_02.csv", rng, 1501, 2, 1400)


if __name__ == "__main__":
    main()
