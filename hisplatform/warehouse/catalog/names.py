"""Names and places for synthetic identities: deliberately diverse, none belonging to a real patient."""

from __future__ import annotations


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


# Given names by gender, mixed across the languages a large city hospital hears every day.
GIVEN_NAMES_F: tuple[str, ...] = _split(
    """
    Mary, Patricia, Jennifer, Linda, Elizabeth, Barbara, Susan, Jessica, Sarah, Karen, Nancy, Lisa,
    Margaret, Sandra, Ashley, Emily, Donna, Michelle, Carol, Amanda, Melissa, Deborah, Stephanie,
    Rebecca, Laura, Helen, Anna, Ruth, Joyce, Evelyn, Maria, Guadalupe, Sofia, Valentina, Camila,
    Lucia, Isabel, Carmen, Rosa, Ana, Aaliyah, Imani, Keisha, Latoya, Nia, Amara, Chidinma, Ngozi,
    Fatou, Aisha, Mei, Li Na, Xiu Ying, Yuki, Haruka, Hana, Ji-woo, Min-seo, Thi Lan, Linh, Priya,
    Ananya, Lakshmi, Deepa, Kavya, Fatima, Zainab, Mariam, Leila, Yasmin, Olga, Natalia, Irina,
    Katarzyna, Agnieszka, Ingrid, Astrid, Siobhan, Aoife, Chiara, Giulia, Francesca, Ines, Beatriz,
    Amelie, Claire, Noor, Esther, Miriam, Tovah
    """
)
GIVEN_NAMES_M: tuple[str, ...] = _split(
    """
    James, Robert, John, Michael, David, William, Richard, Joseph, Thomas, Charles, Christopher,
    Daniel, Matthew, Anthony, Mark, Donald, Steven, Paul, Andrew, Joshua, Kenneth, Kevin, Brian,
    George, Timothy, Ronald, Edward, Jason, Jeffrey, Ryan, Jose, Juan, Luis, Carlos, Miguel, Javier,
    Diego, Alejandro, Mateo, Santiago, Darnell, Jamal, Malik, Tyrone, Andre, Chukwuemeka, Oluwaseun,
    Kwame, Kofi, Moussa, Wei, Jian, Hao, Hiroshi, Takeshi, Kenta, Min-jun, Seo-jun, Minh, Quang, Arjun,
    Rahul, Vikram, Sanjay, Ravi, Omar, Ahmed, Youssef, Hassan, Tariq, Dmitri, Sergei, Piotr, Tomasz,
    Lars, Erik, Sean, Padraig, Marco, Luca, Giovanni, Joao, Tiago, Pierre, Antoine, Yosef, Eitan,
    Mehmet, Emre, Nikos
    """
)
FAMILY_NAMES: tuple[str, ...] = _split(
    """
    Smith, Johnson, Williams, Brown, Jones, Miller, Davis, Wilson, Anderson, Taylor, Thomas, Moore,
    Jackson, Martin, Lee, Thompson, White, Harris, Clark, Lewis, Robinson, Walker, Young, Allen, King,
    Wright, Scott, Hill, Green, Adams, Baker, Nelson, Carter, Mitchell, Roberts, Campbell, Parker,
    Evans, Edwards, Collins, Garcia, Rodriguez, Martinez, Hernandez, Lopez, Gonzalez, Perez, Sanchez,
    Ramirez, Torres, Flores, Rivera, Gomez, Diaz, Morales, Reyes, Cruz, Ortiz, Castillo, Okafor,
    Adeyemi, Okonkwo, Mensah, Diallo, Nkemelu, Abara, Boateng, Kamara, Toure, Nguyen, Tran, Le, Pham,
    Chen, Wang, Li, Zhang, Liu, Huang, Kim, Park, Choi, Tanaka, Suzuki, Sato, Ito, Yamamoto, Nakamura,
    Kobayashi, Patel, Shah, Singh, Kumar, Gupta, Reddy, Iyer, Khan, Ali, Hussain, Haddad, Nasser,
    Rahman, Yilmaz, Demir, Cohen, Levi, Friedman, Katz, Mizrahi, Ivanova, Petrov, Kowalski, Nowak,
    Lindqvist, Johansson, Andersen, Murphy, Walsh, O'Brien, Kelly, Byrne, Rossi, Russo, Ferrari,
    Esposito, Silva, Santos, Costa, Moreau, Dubois, Lefebvre, Muller, Schmidt, Fischer, Weber,
    Papadopoulos, Novak
    """
)

STREET_NAMES: tuple[str, ...] = _split(
    """
    Elm Street, Maple Avenue, Oak Street, Cedar Lane, Pine Road, Washington Street, Main Street,
    Park Avenue, Beacon Street, Commonwealth Avenue, Harbor View Drive, Chestnut Street, Willow Court,
    Highland Avenue, Summer Street, Winter Street, Centre Street, Lincoln Road, Riverside Drive,
    Brookline Avenue, Tremont Street, Dorchester Avenue, Columbia Road, Huntington Avenue,
    Boylston Street, Hancock Street, Adams Street, Quincy Avenue, Spring Street, Prospect Hill Road,
    Orchard Lane, Meadow Way, Birch Terrace, Hawthorne Place, Sycamore Drive, Grove Street,
    Church Street, School Street, Mill Road, Bridge Street, Linden Street, Ash Avenue, Garden Street,
    Forest Hills Road, Lake Shore Drive, Hillside Avenue
    """
)
# (city, postcode prefix): postcodes are five digits, as in the catchment area of a Boston hospital.
CITIES: tuple[tuple[str, str], ...] = (
    ("Boston", "021"),
    ("Cambridge", "021"),
    ("Somerville", "021"),
    ("Brookline", "024"),
    ("Newton", "024"),
    ("Quincy", "021"),
    ("Malden", "021"),
    ("Medford", "021"),
    ("Waltham", "024"),
    ("Lynn", "019"),
    ("Revere", "021"),
    ("Chelsea", "021"),
    ("Everett", "021"),
    ("Framingham", "017"),
    ("Brockton", "023"),
    ("Lowell", "018"),
    ("Worcester", "016"),
    ("Salem", "019"),
    ("Dedham", "020"),
    ("Milton", "021"),
)
AREA_CODES: tuple[str, ...] = ("617", "857", "781", "339", "508", "978")
# Reserved for documentation (RFC 2606), so no synthetic address can reach a real mailbox.
EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")
RELATIONSHIPS_ADULT: tuple[tuple[str, int], ...] = (
    ("spouse", 40),
    ("daughter", 14),
    ("son", 12),
    ("partner", 8),
    ("sister", 7),
    ("brother", 6),
    ("mother", 5),
    ("father", 3),
    ("friend", 5),
)
RELATIONSHIPS_MINOR: tuple[tuple[str, int], ...] = (("mother", 60), ("father", 35), ("guardian", 5))
