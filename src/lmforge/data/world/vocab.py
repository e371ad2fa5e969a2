"""Word lists the synthetic world is made of (pure data, no logic).

Every list is a tuple so nothing can reorder it. Names of people, pets and
cities are distinct from each other, so a checker can tell answers apart.
"""

from __future__ import annotations

# Kept compact by hand: one item per line would make this file ten times longer.
# fmt: off

FEMALE_NAMES = (
    "Anna", "Bella", "Clara", "Daisy", "Emma", "Fiona", "Grace", "Hannah", "Iris", "Julia", "Kate",
    "Lena", "Mia", "Nora", "Olivia", "Paula", "Rosa", "Sara", "Tina", "Ursula", "Vera", "Wendy",
    "Zoe", "Alice", "Beth", "Carmen", "Diana", "Elena", "Freya", "Gemma", "Helen", "Ingrid", "Jane",
    "Karen", "Laura", "Maria", "Nadia", "Petra", "Rachel", "Sophie", "Tara", "Amy", "Chloe", "Eva",
    "Hazel", "Ivy", "Leah", "Maya", "Nina", "Ruth", "Sonia", "Lucy", "Agnes", "Edith", "Flora",
    "Greta", "Heidi", "Irene", "Joan", "Lydia", "Martha", "Naomi", "Pia", "Stella", "Thea", "Yara",
    "Alma", "Dora", "Ella", "Lisa", "Mira", "Rita",
)

MALE_NAMES = (
    "Ben", "Carl", "David", "Eric", "Frank", "George", "Henry", "Ivan", "Jack", "Karl", "Leo",
    "Mark", "Noah", "Oscar", "Paul", "Quentin", "Ralph", "Sam", "Tom", "Victor", "Walter", "Adam",
    "Boris", "Colin", "Daniel", "Edward", "Felix", "Gavin", "Hugo", "Isaac", "James", "Kevin",
    "Liam", "Martin", "Nathan", "Owen", "Peter", "Robert", "Simon", "Tim", "Uri", "Vincent",
    "William", "Aaron", "Bruno", "Dean", "Emil", "Fred", "Glen", "Harry", "Ian", "Jonas", "Lars",
    "Milo", "Neil", "Otto", "Philip", "Roger", "Stefan", "Theo", "Anton", "Brian", "Dennis",
    "Elias", "Gustav", "Igor", "Joel", "Lukas", "Max", "Oliver", "Rudy", "Sven",
)

SURNAMES = (
    "Adams", "Baker", "Carter", "Dawson", "Ellis", "Fisher", "Grant", "Hughes", "Irving", "Jensen",
    "Keller", "Lambert", "Moreau", "Novak", "Olsen", "Price", "Quinn", "Rossi", "Silva", "Turner",
    "Usher", "Varga", "Walsh", "Young", "Zeller", "Berg", "Costa", "Duval", "Engel", "Ford", "Hale",
    "Kowal", "Lund", "Marsh", "Nash", "Park", "Reyes", "Stone", "Vance", "Wolf",
)

# Syllables for names beyond the curated lists (large worlds); see entities.invent_name.
NAME_SYLLABLES = (
    "ka", "lo", "mi", "ra", "ne", "ti", "so", "va", "de", "ru", "la", "bo", "fe", "gi", "no", "pa",
    "re", "si", "to", "ve", "ma", "li", "da", "ro", "sa",
)

CITIES = (
    "Ashford", "Bramble", "Corran", "Dunmore", "Elmstead", "Fairhaven", "Glenrock", "Harlow",
    "Ivywood", "Juniper", "Kestrel", "Larkspur", "Millbrook", "Northgate", "Oakhurst", "Pinecrest",
    "Redcliff", "Stonebridge", "Thornbury", "Valebrook", "Westmere", "Yarrow", "Zelton", "Amberly",
    "Bellmoor", "Crestwood", "Drayton", "Eastwick", "Foxley", "Greyhaven", "Holloway", "Ironvale",
    "Kingsley", "Lowell", "Marston", "Newbury", "Ormond", "Pembry", "Rosewick", "Sandholm",
)

COUNTRIES = (
    "Norland", "Estavia", "Marren", "Solvia", "Tarsk", "Veldora",
)

CITY_FEATURES = (
    "by the sea", "in the mountains", "on a wide river", "in a green valley", "near a dark forest",
    "on a windy hill", "beside a quiet lake", "on the open plains",
)

LANDMARKS = (
    "an old stone bridge", "a tall clock tower", "a busy harbour", "a large park",
    "a famous museum", "a white lighthouse", "a huge market", "a royal castle", "a glass library",
    "a round theatre", "a botanical garden", "a giant fountain",
)

PETS = (
    "cat", "dog", "rabbit", "parrot", "hamster", "goldfish", "turtle", "horse", "owl", "lizard",
    "canary", "ferret",
)

PET_NAMES = (
    "Rex", "Biscuit", "Whiskers", "Pepper", "Luna", "Shadow", "Ginger", "Mango", "Pickle", "Noodle",
    "Pebble", "Button", "Socks", "Coco", "Bubbles", "Sunny", "Ziggy", "Toffee", "Muffin", "Rocket",
    "Snowball", "Patch", "Bandit", "Cookie", "Peanut", "Waffle", "Comet", "Fudge", "Marble",
    "Olive", "Pumpkin", "Rusty", "Scout", "Tiger", "Velvet", "Willow", "Acorn", "Blaze", "Clover",
    "Domino", "Echo", "Fern", "Gizmo", "Honey", "Indigo", "Jasper", "Kiwi", "Lemon", "Maple",
    "Nugget", "Oreo", "Pixel", "Quincy", "Ripple", "Sprout", "Truffle", "Wobble", "Yoyo", "Zorro",
    "Bean", "Cinder", "Dusty", "Fidget", "Goose", "Hopper", "Jelly", "Kipper", "Lucky", "Mocha",
    "Nibbles", "Pip", "Rolo", "Smudge", "Tango", "Whisper", "Ace", "Bolt", "Chip", "Dottie",
    "Flash", "Gus", "Hobbit", "Jazz", "Ketchup", "Lolly", "Moss", "Nacho", "Pudding", "Radish",
    "Sprinkle", "Taco", "Twig", "Wiggles", "Zippy", "Bramblepaw", "Crumble", "Dumpling", "Fizz",
    "Gumdrop", "Hazelnut", "Jellybean", "Marshmallow", "Pretzel", "Sherbet", "Tinsel", "Yeti",
    "Banjo", "Cricket", "Dandelion", "Frodo", "Gadget", "Hiccup", "Juniperpaw", "Kazoo", "Limerick",
    "Meatball", "Noodlepaw", "Popcorn", "Quokka", "Rascal", "Scooter", "Turnip", "Wasabi",
)

JOBS = (
    "baker", "teacher", "doctor", "farmer", "pilot", "painter", "nurse", "engineer", "chef",
    "gardener", "librarian", "carpenter", "dentist", "musician", "writer", "tailor", "plumber",
    "architect", "mechanic", "journalist", "photographer", "lawyer", "scientist", "florist",
    "butcher",
)

FOODS = (
    "pasta", "pizza", "soup", "rice", "bread", "cheese", "noodles", "salad", "curry", "pancakes",
    "dumplings", "tacos", "sushi", "porridge", "chocolate", "strawberries", "omelettes", "waffles",
    "lentils", "mushrooms",
)

COLORS = (
    "red", "blue", "green", "yellow", "purple", "orange", "pink", "brown", "black", "white", "grey",
    "gold",
)

HOBBIES = (
    "playing chess", "painting", "swimming", "cycling", "gardening", "fishing", "knitting",
    "hiking", "singing", "dancing", "reading", "cooking", "running", "climbing", "sailing",
    "baking", "juggling", "making pottery", "birdwatching", "skating",
)

MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)

# Events are named 'the {theme} {kind}', e.g. 'the Lantern Festival'.
EVENT_KINDS = (
    "Fair", "Festival", "Marathon", "Concert", "Parade", "Race", "Exhibition", "Tournament",
    "Market", "Regatta",
)

EVENT_THEMES = (
    "Spring", "Summer", "Autumn", "Winter", "Harvest", "Music", "Flower", "Lantern", "River",
    "Book", "Kite", "Cheese", "Jazz", "Apple", "Star",
)

# Countable things for word problems and counting tasks.
ITEMS = (
    "apples", "pencils", "stickers", "marbles", "cookies", "books", "stamps", "shells", "cards",
    "coins", "buttons", "candles", "eggs", "oranges", "balloons", "cupcakes", "flowers", "crayons",
)

# Plain nouns used by counting, reversing and sorting tasks.
WORDS = (
    "apple", "river", "chair", "garden", "window", "pencil", "rabbit", "mountain", "kettle",
    "planet", "violin", "basket", "candle", "forest", "ladder", "orange", "rocket", "saddle",
    "tomato", "umbrella", "wagon", "yellow", "zebra", "banana", "cherry", "dolphin", "engine",
    "feather", "guitar", "harbour", "island", "jacket", "kitten", "lemon", "magnet", "needle",
    "octopus", "parrot", "quilt", "ribbon", "spoon", "tiger", "blanket", "cactus", "desk", "lamp",
    "moon", "nest", "ocean", "piano", "bread", "cloud", "door", "egg", "fish", "glass", "hat",
    "ink", "jam", "key", "leaf", "map", "net", "owl", "pan", "ring", "sock", "tree", "vase", "wolf",
    "bottle", "button", "carrot", "bucket", "hammer", "pillow", "mirror", "strawberry", "butterfly",
    "telescope", "pineapple", "crocodile", "helicopter", "adventure", "chocolate", "dinosaur",
    "elephant", "kangaroo", "lighthouse", "newspaper", "sandwich", "waterfall", "blackboard",
    "snowflake",
)

# Sentiment reviews: things to review, and words that carry the polarity.
REVIEW_SUBJECTS = (
    "the cafe", "the bakery", "the hotel", "the museum", "the new kettle", "this backpack",
    "the film", "this book", "the pizza place", "the bike shop", "the train ride", "the concert",
    "this phone", "the swimming pool", "the noodle bar", "this umbrella", "the bookshop",
    "the guided tour", "this lamp", "the theatre show",
)

POSITIVE_WORDS = (
    "great", "wonderful", "delightful", "excellent", "lovely", "fantastic", "superb", "pleasant",
    "brilliant", "charming", "amazing", "perfect",
)

NEGATIVE_WORDS = (
    "terrible", "awful", "dreadful", "poor", "disappointing", "horrible", "boring", "dull",
    "miserable", "annoying", "useless", "unpleasant",
)

POSITIVE_DETAILS = (
    "the staff were friendly", "everything was clean", "it was worth every coin",
    "the service was quick", "it made my day", "I will come back soon", "my friends loved it too",
    "the price was fair", "it works like a dream",
)

NEGATIVE_DETAILS = (
    "the staff were rude", "everything was dirty", "it was a waste of money",
    "the service was slow", "it ruined my day", "I will never come back", "my friends hated it too",
    "the price was far too high", "it broke after a day",
)

# Topic sentences: label -> cue phrases that mark the topic.
TOPIC_CUES = {
    "sports": (
        "the football match", "the tennis final", "the coach", "the referee", "the stadium",
        "the winning goal", "the swimming race", "the league table", "the team captain",
        "the cycling race", "the final score", "the marathon runners",
    ),
    "food": (
        "the soup recipe", "the hot oven", "the spicy sauce", "the fresh bread", "the cheese plate",
        "the kitchen", "the dinner menu", "the chocolate cake", "the new chef",
        "the vegetable stew", "the breakfast table", "the sweet pastry",
    ),
    "weather": (
        "the heavy rain", "the strong wind", "the thunderstorm", "the morning fog",
        "the weather forecast", "the snowfall", "the sunny sky", "the cold front",
        "the dark clouds", "the summer heat", "the icy roads", "the rainbow",
    ),
    "music": (
        "the guitar solo", "the piano lesson", "the new album", "the choir", "the drummer",
        "the concert hall", "the violin player", "the pop song", "the jazz band", "the singer",
        "the melody", "the orchestra",
    ),
}

TOPIC_FRAMES = (
    "{person} talked about {a} for the whole evening.", "Everyone in {city} was excited about {a}.",
    "The newspaper in {city} wrote a long story about {a}.",
    "{person} could not stop thinking about {a}.", "Yesterday {person} told a friend about {a}.",
    "The radio in {city} kept reporting on {a}.",
    "At school the children asked many questions about {a}.",
    "{person} wrote a short letter about {a}.",
)

TOPIC_EXTRA_FRAMES = (
    "Later, {person} also mentioned {b}.", "Then the talk turned to {b}.",
    "Nobody in {city} had expected {b}.", "It reminded {person} of {b}.",
)

# fmt: on
